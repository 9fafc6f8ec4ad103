"""The GPU lease directory is shared by every user of the machine: each user's jobs make it,
or find it, usable by all, and one that is not says so, naming the path and the config key."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from virnucpro.gpu_lease import gpu_lease

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
