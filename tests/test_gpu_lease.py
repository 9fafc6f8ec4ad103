"""GPU leases: taken at once or not at all (try_take), or waited for (take), and given back
(release). The lease directory is shared by every user of the machine: each user's jobs make
it, or find it, usable by all, and one that is not says so, naming the path and the config
key."""

import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from virnucpro.runtime.gpu_lease import GpuLease, gpu_lease

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def lease(devices, lease_dir):
    """The device a lease on one of `devices` gets, or the error it raises, as text."""
    try:
        with gpu_lease(devices, lease_dir, poll_seconds=0.01) as device:
            return device
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def lease_as(uid, devices, lease_dir):
    """`lease`, in a child process running as user `uid` (forked: the interpreter's own files
    may be closed to that user)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, str(lease(devices, lease_dir)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as result:
        text = result.read()
    os.waitpid(child, 0)
    return text


@pytest.fixture
def machine_tmp():
    """A directory under /tmp that every user may enter (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def lease_with_private_umask(lease_dir):
    """Take GPU 0's lease as a user whose umask lets no one else read or write their files."""
    umask = os.umask(0o077)
    try:
        assert lease(["0"], lease_dir) == "0"
    finally:
        os.umask(umask)


def test_the_lease_directory_and_lock_files_are_everyones_whatever_the_umask(machine_tmp):
    lease_dir = machine_tmp / "leases"
    lease_with_private_umask(lease_dir)
    assert mode(lease_dir) == 0o1777  # like /tmp: all may add files, none remove another's
    assert mode(lease_dir / "gpu0.lock") == 0o666


@as_root
def test_a_second_user_takes_leases_in_the_directory_another_user_made(machine_tmp):
    lease_dir = machine_tmp / "leases"
    lease_with_private_umask(lease_dir)
    assert lease_as(NOBODY, ["0"], lease_dir) == "0"  # on root's lock file
    assert lease_as(NOBODY, ["1"], lease_dir) == "1"  # on a lock file of its own
    assert (lease_dir / "gpu1.lock").stat().st_uid == NOBODY
    assert lease(["1"], lease_dir) == "1"


@as_root
def test_a_lease_directory_another_user_cannot_write_is_an_error_naming_it(machine_tmp):
    lease_dir = machine_tmp / "leases"
    lease_dir.mkdir(mode=0o755)  # as earlier versions made it
    refused = lease_as(NOBODY, ["0"], lease_dir)
    assert refused.startswith(
        f"PermissionError: the GPU lease directory {lease_dir} (config key embedding.lease_dir) "
        "cannot be used by user nobody: [Errno 13] Permission denied"
    )
    assert f"chmod 1777 {lease_dir}" in refused

    assert lease(["0"], lease_dir) == "0"  # its owner's next job opens it to all
    assert mode(lease_dir) == 0o1777
    assert lease_as(NOBODY, ["0"], lease_dir) == "0"


@pytest.fixture
def visible_devices(monkeypatch):
    """CUDA_VISIBLE_DEVICES as it was after the test (a lease sets it)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def test_try_take_takes_a_free_device_at_once_and_no_busy_one(tmp_path, visible_devices):
    first, second = (GpuLease(["0", "1"], tmp_path) for _ in range(2))
    assert first.try_take() and first.device == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert first.try_take() and first.device == "0"  # held: nothing more to take
    assert second.try_take() and second.device == "1"
    third = GpuLease(["0", "1"], tmp_path)
    assert not third.try_take() and not third.held
    second.release()
    second.release()  # nothing held: nothing to do
    assert third.try_take() and third.device == "1"
    first.release()
    third.release()


def test_take_waits_for_a_release_and_takes_the_device_within_a_poll(tmp_path, visible_devices):
    holder, waiter = GpuLease(["3"], tmp_path), GpuLease(["3"], tmp_path)
    assert holder.take() == "3"
    released = []

    def release_later():
        time.sleep(0.3)
        released.append(time.monotonic())
        holder.release()

    thread = threading.Thread(target=release_later)
    thread.start()
    assert waiter.take() == "3"
    taken = time.monotonic()
    thread.join()
    assert 0 <= taken - released[0] < 0.25  # a poll every 50 ms
    waiter.release()


def test_without_devices_or_under_slurm_there_is_nothing_to_take(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    nothing = GpuLease([], tmp_path / "never-made")
    assert nothing.try_take() and nothing.take() is None
    nothing.release()
    assert not (tmp_path / "never-made").exists()
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    granted = GpuLease(["0"], tmp_path)
    assert granted.try_take() and granted.device == "5"
    assert not (tmp_path / "gpu0.lock").exists()
    granted.release()
