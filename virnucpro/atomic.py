"""Write files under a temporary name and rename them into place, so no reader or rerun
ever sees a half-written output."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared like any file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path, mode="w"):
    """Open a temporary file for writing; it becomes `path` when the block succeeds."""
    with atomic_path(path) as tmp:
        text = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
        with open(tmp, mode, **text) as handle:
            yield handle
