"""The library's shelves keep their order (pyproject.toml, [tool.importlinter]): no stage imports
another, and each shelf imports only those below it."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_the_imports_keep_the_shelves_contracts():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout
