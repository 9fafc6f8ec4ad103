"""One embedding job per GPU on a machine with several: a job takes a lease on one device before
it touches CUDA and sees only that device (CUDA_VISIBLE_DEVICES).

Snakemake schedules jobs but never assigns a GPU to one. Its `gpu` resource keeps at most as
many embedding jobs running as there are GPUs; the lease says which GPU each one gets. A lease
is an exclusive flock on a file per device in a directory shared by every run on the machine,
so two runs never share a GPU either, and the kernel releases it however the job ends. The
directory is every user's, like /tmp (mode 1777), and so is each lock file (0666), whatever the
umask of the job that made it.

Under SLURM the scheduler has already granted the job its GPU in CUDA_VISIBLE_DEVICES; the job
uses it as given.
"""

import errno
import fcntl
import logging
import os
import pwd
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

SHARED_DIR, SHARED_FILE = 0o1777, 0o666


@contextmanager
def gpu_lease(devices, lease_dir, poll_seconds=0.5):
    """Hold one of `devices` (ids as the machine numbers them) for the block, with
    CUDA_VISIBLE_DEVICES set to it. No devices: nothing is leased (a CPU job)."""
    if "SLURM_JOB_ID" in os.environ:
        log.info(
            "SLURM job %s: CUDA_VISIBLE_DEVICES=%s as granted",
            os.environ["SLURM_JOB_ID"],
            os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        )
        yield os.environ.get("CUDA_VISIBLE_DEVICES")
        return
    if not devices:
        yield None
        return
    lease_dir = Path(lease_dir)
    try:
        _share(lease_dir)
    except OSError as error:
        raise _unusable(lease_dir, error) from None
    waited = time.monotonic()
    while True:
        for device in devices:
            handle = _lock_file(lease_dir, device)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            try:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
                log.info(
                    "lease on GPU %s taken (waited %.1f s): CUDA_VISIBLE_DEVICES=%s",
                    device,
                    time.monotonic() - waited,
                    device,
                )
                yield str(device)
            finally:
                log.info("lease on GPU %s released", device)
                fcntl.flock(handle, fcntl.LOCK_UN)
                os.close(handle)
            return
        time.sleep(poll_seconds)


def _share(lease_dir):
    """Make the lease directory, open to every user, if it is missing: made under another name
    and renamed, so that no job ever sees it before it is open; one made by an earlier version
    (0755) is opened by its owner."""
    if not lease_dir.exists():
        lease_dir.parent.mkdir(parents=True, exist_ok=True)
        made = tempfile.mkdtemp(prefix=f".{lease_dir.name}.", dir=lease_dir.parent)
        os.chmod(made, SHARED_DIR)
        try:
            os.rename(made, lease_dir)
        except OSError:  # another job made it first
            os.rmdir(made)
    if not lease_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is not a directory", str(lease_dir))
    info = lease_dir.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != SHARED_DIR:
        lease_dir.chmod(SHARED_DIR)


def _lock_file(lease_dir, device):
    """The descriptor of a device's lock file, made 0666 where this job's user owns it."""
    path = lease_dir / f"gpu{device}.lock"
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, SHARED_FILE)
        info = os.fstat(handle)
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != SHARED_FILE:
            os.fchmod(handle, SHARED_FILE)  # the umask took some bits away
    except OSError as error:
        raise _unusable(lease_dir, error) from None
    return handle


def _unusable(lease_dir, error):
    return PermissionError(
        f"the GPU lease directory {lease_dir} (config key embedding.lease_dir) cannot be used by "
        f"user {_user()}: {error}. Every user of this machine needs to write in it: its owner "
        f"can open it with `chmod 1777 {lease_dir}` (and the lock files in it with `chmod 666`), "
        "or set embedding.lease_dir to another directory."
    )


def _user():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
