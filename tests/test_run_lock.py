"""One run at a time in a working directory: a run does not start its jobs while another run,
or a job of an ended run, is live there (the workflow-level test: test_resume.py)."""

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest

from virnucpro.runtime.run_lock import AnotherRun, RunLock

# A process that takes a lock (RunLock's method argv[2]) and keeps it until told to end.
HOLDER = """
import sys
from pathlib import Path
from virnucpro.runtime.run_lock import RunLock
getattr(RunLock(Path(sys.argv[1])), sys.argv[2])()
print("holding", flush=True)
sys.stdin.readline()
"""


@contextmanager
def holding(directory, how):
    """A process that holds the lock of RunLock(directory).`how`(), killed at the block's end."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n", holder.communicate()[1]
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9 or a lost node would end it
        holder.wait()


def test_a_run_stops_while_another_holds_the_run_lock_and_starts_once_it_has_ended(tmp_path):
    lock = RunLock(tmp_path)
    assert lock.other_run() is None
    with holding(tmp_path, "hold_for_run") as first:
        holder = f"Snakemake pid {first.pid} on {socket.gethostname()}, since "
        assert lock.other_run().startswith(
            f"another run of the workflow is running in this directory: {holder}"
        )
        expected = (
            rf"another run of the workflow is running in this directory \({os.getcwd()}\): "
            rf"{holder}.*This run starts no job beside it.*whatever --unlock does\. Let that run "
            "finish, or end its Snakemake .*, then run the same command again"
        )
        with pytest.raises(AnotherRun, match=expected):
            lock.hold_for_run()
    assert lock.other_run() is None
    with holding(tmp_path, "hold_for_run"):  # its lock released by the kernel
        pass


def test_a_run_stops_while_a_job_of_an_ended_run_still_runs(tmp_path):
    with holding(tmp_path, "hold_for_job"), holding(tmp_path, "hold_for_job"):
        expected = (
            r"a job of an earlier run of the workflow still runs in this directory .* Let the "
            r"job finish, or cancel it \(scancel; squeue --me lists them\), then run the same"
        )
        with pytest.raises(AnotherRun, match=expected):
            RunLock(tmp_path).hold_for_run()
        assert RunLock(tmp_path).other_run() is None  # it left the run lock free
    with holding(tmp_path, "hold_for_run"):
        pass


def test_without_file_locks_a_run_goes_on_with_a_warning(tmp_path, monkeypatch, caplog):
    """A filesystem without locks (Lustre mounted `noflock`) cannot be made here; its flock can:
    it fails with ENOSYS."""

    def no_locks(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    lock = RunLock(tmp_path)
    lock.hold_for_run()
    assert lock.other_run() is None
    expected = "its filesystem has no file locks, so nothing stops a second run in this directory"
    assert f"{tmp_path / 'run.lock'}: {expected}" in caplog.text
