"""One embedding job per GPU at a time on a machine with several: a job takes a lease on one
device before it touches CUDA and sees only that device (CUDA_VISIBLE_DEVICES).

Snakemake schedules jobs but never assigns a GPU to one. Its `gpu` resource caps how many
embedding jobs run at once; the lease says which GPU each one gets, and that no two compute on
one GPU at once: a job may start before a GPU is free, do its CPU work, and wait for the lease
only then (embed.embed_shard). A lease is an exclusive flock on a file per device in a
directory shared by every run on the machine, so two runs never share a GPU either, and the
kernel releases it however the job ends. The directory is every user's, like /tmp (mode 1777),
and so is each lock file (0666), whatever the umask of the job that made it.

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
# how often a waiting job tries the devices again: the GPU idles for up to this long between
# one job's release and the next job's lease
POLL_SECONDS = 0.05


class GpuLease:
    """A lease on one of `devices` (ids as the machine numbers them) in `lease_dir`, taken with
    `try_take()` (at once or not at all) or `take()` (waiting for a free device), and given
    back with `release()`; taken, CUDA_VISIBLE_DEVICES names its device. With no devices (a
    CPU job, a test) or under SLURM, there is nothing to take: both succeed at once."""

    def __init__(self, devices, lease_dir=None, poll_seconds=POLL_SECONDS):
        self.devices = [str(device) for device in devices]
        self.lease_dir, self.poll_seconds = lease_dir, poll_seconds
        self.device, self._handle, self.held = None, None, False

    def try_take(self):
        """Take a free device's lease if there is one; whether the lease is held."""
        if not self.held:
            self._try_devices(time.monotonic())
        return self.held

    def take(self):
        """Wait for a device's lease, take it and return the device (None: nothing to take)."""
        waiting = time.monotonic()
        while not (self.held or self._try_devices(waiting)):
            time.sleep(self.poll_seconds)
        return self.device

    def release(self):
        """Give the lease back (nothing if none is held)."""
        if self._handle is not None:
            # logged first: a job that takes the lease next logs that it did after this line
            log.info("lease on GPU %s released", self.device)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            os.close(self._handle)
        self._handle, self.held = None, False

    def _try_devices(self, waiting):
        """Take the lease if it can be taken now (`waiting` since then); whether it was."""
        if "SLURM_JOB_ID" in os.environ:
            log.info(
                "SLURM job %s: CUDA_VISIBLE_DEVICES=%s as granted",
                os.environ["SLURM_JOB_ID"],
                os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            )
            self.device, self.held = os.environ.get("CUDA_VISIBLE_DEVICES"), True
            return True
        if not self.devices:
            self.held = True
            return True
        lease_dir = Path(self.lease_dir)
        try:
            _share(lease_dir)
        except OSError as error:
            raise _unusable(lease_dir, error) from None
        for device in self.devices:
            handle = _lock_file(lease_dir, device)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            self.device, self._handle, self.held = device, handle, True
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            log.info(
                "lease on GPU %s taken (waited %.2f s): CUDA_VISIBLE_DEVICES=%s",
                device,
                time.monotonic() - waiting,
                device,
            )
            return True
        return False


@contextmanager
def gpu_lease(devices, lease_dir, poll_seconds=POLL_SECONDS):
    """Hold one of `devices` for the block (GpuLease.take), with CUDA_VISIBLE_DEVICES set to
    it; yields the device, None where there is nothing to lease."""
    lease = GpuLease(devices, lease_dir, poll_seconds)
    try:
        yield lease.take()
    finally:
        lease.release()


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
