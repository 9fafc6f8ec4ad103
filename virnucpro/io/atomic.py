"""Write files under a temporary name and rename them into place, so no reader or rerun
ever sees a half-written output.

The writer holds a lock on its temporary file until the rename: a temporary file nobody holds
is one a killed job left behind, and the next writer of the same output removes it; one that
somebody holds means another process is writing that output now, and the second writer stops
rather than compute it twice. On a filesystem without file locks (Lustre mounted `noflock`,
NFS without its lock manager) writers go on without them, as HDF5 does, and a temporary file
is left where it is, since nothing tells whether its writer still lives.
"""

import errno
import fcntl
import glob
import io
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .disk_full import full_disk, naming_a_full_disk

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)
_SUFFIX = ".tmp"
NO_LOCKS = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK)  # what flock says on such filesystems


class OutputBusy(RuntimeError):
    """Another live process is writing the same output."""


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds,
    its bytes on disk first, so that not even a crash leaves `path` half-written. Out of room,
    DiskFull names `path`, its temporary file removed."""
    path = Path(path)
    with naming_a_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_left_behind(path)
        fd, tmp = _locked_temporary(path)
        try:
            yield tmp
            os.fsync(fd)  # the data, before the rename that publishes it
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)


@contextmanager
def atomic_open(path, mode="w"):
    """Open a temporary file for writing, as text ("w") or bytes ("wb"); it becomes `path` when
    the block succeeds."""
    with atomic_path(path) as tmp:
        out = named_writer(tmp, path)
        with out if "b" in mode else io.TextIOWrapper(out, encoding="utf-8", newline="") as handle:
            yield handle


def named_writer(tmp, path):
    """`tmp` open for writing bytes, buffered: a write that finds no room raises DiskFull
    naming `path`, the file it becomes, even where a block writes several at once."""
    raw = _NamedFile(tmp, path)
    return io.BufferedWriter(raw, os.fstat(raw.fileno()).st_blksize)  # as open() buffers


class _NamedFile(io.FileIO):
    """A file written under a temporary name whose want of room names the file it becomes
    (an OSError of a write names no file)."""

    def __init__(self, tmp, path):
        super().__init__(tmp, "w")
        self.path = path

    def write(self, data):
        try:
            return super().write(data)
        except OSError as error:
            if (full := full_disk(error, self.path)) is None:
                raise
            raise full from None


def _temporaries_of(path):
    """The temporary files of `path` in its directory: `.{name}.XXXXXXXX.tmp` (mkstemp's random
    part holds no dot, so `.a.b.XXXXXXXX.tmp`, of `a.b`, is not one of `a`'s)."""
    prefix = f".{path.name}."
    return [
        sibling
        for sibling in path.parent.glob(f".{glob.escape(path.name)}.*{_SUFFIX}")
        if "." not in sibling.name[len(prefix) : -len(_SUFFIX)]
    ]


def _locked_temporary(path):
    """A new temporary file beside `path`, created 0666 less the umask, and its descriptor,
    which holds the lock that says it is being written."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_SUFFIX, dir=path.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while another writer's sweep looks at it
        except OSError as error:
            if error.errno not in NO_LOCKS:
                raise
        if _same_file(tmp, fd):
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared like any file
            return fd, Path(tmp)
        os.close(fd)  # a sweep took it for a left-behind file before we locked it: again


def _remove_left_behind(path):
    """Remove the temporary files of `path` that killed writers left (no lock held); stop if a
    live process holds one."""
    for tmp in _temporaries_of(path):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusy(
                    f"{path} is being written by another process, which holds {tmp}: a job of "
                    "an earlier run of the workflow is still running. Let it end (or end it), "
                    "then run the same command again."
                ) from None
            except OSError as error:
                if error.errno not in NO_LOCKS:
                    raise
                log.warning(
                    "%s is left: its filesystem has no file locks to tell whether its writer "
                    "still runs; remove it once no job of the workflow runs",
                    tmp,
                )
                continue
            if _same_file(tmp, fd):
                size = os.fstat(fd).st_size
                tmp.unlink()
                log.info("removed %s (%d bytes), left by a writer that was cut off", tmp, size)
        finally:
            os.close(fd)


def _same_file(name, fd):
    """Whether `name` still names the file open as `fd`."""
    try:
        named, opened = os.stat(name), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
