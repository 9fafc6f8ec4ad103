#!/usr/bin/env bash
# Run on the GPU machine from the repository root: install the carried wheels (.whl/, the
# packages its image lacks), then run the given command with the package importable from the
# working tree.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
"$@"
