#!/usr/bin/env bash
# Run on the GPU machine from the repository root: install the carried wheels (.whl/, the
# packages its image lacks), then run the given command with the package importable from the
# working tree.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
# The image's Python packages come without bytecode, so every process would compile torch's
# sources again (7.6 s of each embedding job's start, benchmarks/job_start.py). pip and conda
# write bytecode when they install, so a user's environment has it: write it once here too.
export PYTHONPYCACHEPREFIX=/tmp/pycache
# (`|| true`: a few packages ship files for other Python versions, which do not compile)
python3 -m compileall -q -j 0 /tmp/site "$(python3 -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parents[1])')" >/dev/null || true
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
"$@"
