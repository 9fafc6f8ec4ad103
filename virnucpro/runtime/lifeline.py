"""Processes that end with the process that started them.

Snakemake does not end its jobs when it is killed itself (SIGKILL, an out-of-memory kill, a
lost session): they ran on, and the rerun started a second process for each of their outputs.
So a job ends once the Snakemake process that started it is gone, and a worker process of a
job once the job is gone.

What is watched is the ancestry, not the parent: Snakemake 9's local executor runs a `script:`
job as `bash -c 'set -euo pipefail; python script.py'`, whose python is Snakemake's own child
only where bash replaces itself with its last command (bash 5.1 and later, no conda activation
before it); otherwise bash sits between the two and outlives Snakemake. The kernel's
parent-death signal (PR_SET_PDEATHSIG) would miss that case, and it follows the thread that
started the child, which for Snakemake is a worker thread of its job pool.
"""

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

# Snakemake's process id, which the workflow (workflow/rules/common.smk) sets in Snakemake's
# environment and so in every job's
SNAKEMAKE_PID = "VIRNUCPRO_SNAKEMAKE_PID"
POLL_SECONDS = 0.5


def end_with_snakemake():
    """For a job: end this process once the Snakemake process that started it has ended."""
    pid = os.environ.get(SNAKEMAKE_PID)
    if pid is None:
        raise RuntimeError(
            f"{SNAKEMAKE_PID} is not set: a virnucpro job runs under the workflow's Snakefile "
            "(workflow/Snakefile), whose rules/common.smk sets it"
        )
    end_with(int(pid), "Snakemake")


def end_with(pid, name):
    """End this process (SIGKILL) once process `pid`, one of its ancestors, has ended."""
    if pid not in ancestors():
        raise RuntimeError(f"{name} (pid {pid}) is not an ancestor of process {os.getpid()}")
    threading.Thread(target=_watch, args=(pid, name), name="lifeline", daemon=True).start()


def ancestors():
    """The process ids above this process, its parent first."""
    found, pid = [], os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        # it ended while we looked (before the open, or between the open and the read, which
        # then fails with ESRCH): the chain above is broken
        except (FileNotFoundError, ProcessLookupError):
            break
        pid = int(stat.rpartition(")")[2].split()[1])  # the field after the command's name
        found.append(pid)
    return found


def _watch(pid, name):
    while pid in ancestors():
        time.sleep(POLL_SECONDS)
    log.error(
        "%s (pid %d) has ended, so this process (%d) ends too; the next run removes what it "
        "leaves half-written",
        name,
        pid,
        os.getpid(),
    )
    os.kill(os.getpid(), signal.SIGKILL)
