# The README's quick start on a fresh machine: `make demo` installs virnucpro into a virtual
# environment of its own (.venv) and runs the demo; `make test` installs it and runs the CPU
# test suite. Each installs only once, and again after pyproject.toml changes.
PYTHON ?= python3
VENV := .venv

.PHONY: demo test

demo: $(VENV)/installed
	$(VENV)/bin/snakemake --profile profiles/local \
		--configfile config/demo/config.yaml config/demo/training.yaml

test: $(VENV)/installed
	$(VENV)/bin/pytest

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install torch==2.13.0 -e ".[test]"
	touch $@
