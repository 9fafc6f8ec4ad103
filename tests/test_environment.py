"""environment.yml (conda) and pyproject.toml (pip) name the same dependencies and versions."""

import re
import tomllib

import yaml

from conftest import REPO

# conda-forge's name where it differs from PyPI's (matplotlib-base: without a GUI toolkit)
CONDA_NAMES = {"matplotlib": "matplotlib-base", "torch": "pytorch"}


def split(requirement):
    name, spec = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def test_conda_environment_matches_the_python_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    cluster = project["optional-dependencies"]["slurm"]  # the conda environment runs on clusters
    pip = dict(split(r) for r in project["dependencies"] + cluster)
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge", "bioconda", "nodefaults"]
    conda = dict(split(d) for d in env["dependencies"] if isinstance(d, str))
    python = conda.pop("python")
    assert python == project["requires-python"]
    assert conda.pop("pip") == ""
    assert conda == {CONDA_NAMES.get(name, name): spec for name, spec in pip.items()}
    assert [d for d in env["dependencies"] if isinstance(d, dict)] == [{"pip": ["-e ."]}]
