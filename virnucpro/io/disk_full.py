"""A disk that is full (or a quota that is used up) while a file is written: one line naming the
file, the space left on its filesystem and what to do, in place of a bare `[Errno 28]` that
names no file. The writer (atomic.py) keeps nothing half-written.

The want of room comes as an OSError from Python's own writes, and as text from the writers it
calls: h5py raises HDF5's report ("... errno = 28, error message = 'No space left on device'")
as an OSError or, closing a file, a RuntimeError; GNU sort says so on its standard error."""

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

_NO_ROOM = {code: os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT)}


class DiskFull(Exception):
    """No room was left to write `path`; `why` is the system's word for it."""

    def __init__(self, path, why):
        self.path, self.why = Path(path), why
        super().__init__(
            f"{path} could not be written: {why} ({_free(self.path)} left on its filesystem). "
            "Free space, then run the same command again."
        )

    def __reduce__(self):  # from a worker process to the job's
        return type(self), (self.path, self.why)


@contextmanager
def naming_a_full_disk(path):
    """Raise DiskFull naming `path` for an error of the block that is a want of room."""
    try:
        yield
    except Exception as error:
        full = full_disk(error, path)
        if full is None:
            raise
        raise full from None


def full_disk(error, path):
    """The DiskFull that `error`, met writing `path`, means; None where it is no want of room.
    One that arose from a DiskFull (the other files of a block, closed as it unwinds, find the
    disk as full) means that first one."""
    why = None
    while error is not None:
        if isinstance(error, DiskFull):
            return error
        why = why or _why(error)
        error = error.__cause__ or error.__context__
    return None if why is None else DiskFull(path, why)


def _why(error):
    """The system's word for a want of room where `error` is one, else None."""
    if getattr(error, "errno", None) in _NO_ROOM:
        return _NO_ROOM[error.errno]
    return next((why for why in _NO_ROOM.values() if why in str(error)), None)


def _free(path):
    """The bytes free on `path`'s filesystem (that of its nearest folder that exists), as a
    person reads them."""
    folder = next(f for f in (path.parent, *path.parent.parents) if f.is_dir())
    free = shutil.disk_usage(folder).free
    size, unit = float(free), "bytes"
    for larger in ("kB", "MB", "GB", "TB"):
        if size < 1000:
            break
        size, unit = size / 1000, larger
    return f"{free} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
