"""One run of the workflow at a time in a working directory.

Snakemake's own lock does not keep two runs apart: its message suggests `--unlock`, after which
a second run's jobs start beside the first's, and one that finds an output being written fails
(atomic.OutputBusy), whereupon Snakemake removes that job's outputs: the first run's files,
finished a moment later. So the Snakemake process that runs a workflow's jobs holds a lock of
its own, a file lock the kernel releases however the process ends (kill -9 included). It takes
it once Snakemake knows that it will run jobs (the workflow's `onstart`, which a dry run,
--unlock, --report, --list or --lint never reach) and before the first; a run that finds it
held stops there, naming the run that holds it. A cluster job's Snakemake, which parses the
workflow again on its node, holds a share of a second lock for its life: a cluster job runs on
when the Snakemake that submitted it is killed, and no run starts while one does (a local job
ends with its Snakemake: lifeline.py).

On a filesystem without file locks (atomic.NO_LOCKS) runs go on unguarded, with a warning.
"""

import fcntl
import logging
import os
import socket
import time
from datetime import datetime

from ..io.atomic import NO_LOCKS

log = logging.getLogger(__name__)

# A look at the run lock (RunLock.other_run, at every Snakemake start) holds it for a moment: a
# run that finds it held tries again for this long before it stops.
LOOK_SECONDS = 1.0
_UNLOCK_CHANGES_NOTHING = "whatever --unlock does"


class AnotherRun(RuntimeError):
    """A live run, or a job of an ended one, works in the directory."""


class RunLock:
    """The locks of the runs of one working directory: files in `directory`."""

    def __init__(self, directory):
        self.run, self.jobs = directory / "run.lock", directory / "jobs.lock"
        self._held = None  # the descriptor of the lock this process holds for its life

    def other_run(self):
        """A note on the live run that holds the run lock, or None where none does: a look
        that neither waits nor keeps the lock."""
        try:
            fd = os.open(self.run, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return (
                f"another run of the workflow is running in this directory: {_holder(fd)}; "
                f"until it ends, no run here starts a job, {_UNLOCK_CHANGES_NOTHING}"
            )
        except OSError as error:
            if error.errno not in NO_LOCKS:
                raise
        finally:
            os.close(fd)
        return None

    def hold_for_run(self):
        """Take the run lock for the life of this process (Snakemake's, before its first job);
        AnotherRun, saying what to do, if a live run holds it or a job of an ended run still
        runs."""
        fd = self._opened(self.run)
        locked = _lock(fd, fcntl.LOCK_EX, LOOK_SECONDS)
        if locked is None:
            os.close(fd)
            log.warning(
                "%s: its filesystem has no file locks, so nothing stops a second run in this "
                "directory from starting beside this one: start one run at a time here",
                self.run,
            )
            return
        if not locked:
            holder = _holder(fd)
            os.close(fd)
            raise AnotherRun(
                f"another run of the workflow is running in this directory ({os.getcwd()}): "
                f"{holder}. This run starts no job beside it, so that neither removes or "
                f"rewrites the other's files, {_UNLOCK_CHANGES_NOTHING}. Let that run finish, or "
                "end its Snakemake (its jobs end with it), then run the same command again."
            )
        if not self._no_job_of_an_ended_run():
            os.close(fd)
            raise AnotherRun(
                "a job of an earlier run of the workflow still runs in this directory "
                f"({os.getcwd()}), although the Snakemake that started it has ended (a cluster "
                "job outlives it). This run starts no job beside it, so that neither removes or "
                f"rewrites the other's files, {_UNLOCK_CHANGES_NOTHING}. Let the job finish, or "
                "cancel it (scancel; squeue --me lists them), then run the same command again."
            )
        started = datetime.now().isoformat(sep=" ", timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(
            fd, f"Snakemake pid {os.getpid()} on {socket.gethostname()}, since {started}".encode()
        )
        self._held = fd

    def hold_for_job(self):
        """Take a share of the jobs lock for the life of this process (a cluster job's
        Snakemake)."""
        fd = self._opened(self.jobs)
        if _lock(fd, fcntl.LOCK_SH, None):
            self._held = fd
        else:
            os.close(fd)

    def _no_job_of_an_ended_run(self):
        """Whether no cluster job holds a share of the jobs lock (this run's start none yet)."""
        fd = self._opened(self.jobs)
        try:
            return _lock(fd, fcntl.LOCK_EX, 0) is not False
        finally:
            os.close(fd)  # released: this run's own cluster jobs take their shares

    def _opened(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # for reading and writing: over NFS a shared lock needs the one, an exclusive the other
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def _lock(fd, operation, wait):
    """Lock `fd`: True once locked; False if another holds it for `wait` seconds (None: wait
    as long as it does); None on a filesystem without file locks."""
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, operation | (0 if deadline is None else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        except OSError as error:
            if error.errno not in NO_LOCKS:
                raise
            return None


def _holder(fd):
    """The run lock's holder, as it recorded itself."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return text or "a Snakemake that has not yet recorded its pid"
