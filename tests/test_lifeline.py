"""Processes end with the process that started them: a job's workers with the job (here), a
job with Snakemake (tests/test_resume.py)."""

import os
import signal
import subprocess
import sys
import time

from virnucpro.runtime.lifeline import SNAKEMAKE_PID

# A job that maps over two worker processes and prints which worker computed each item.
JOB = """
import os, time
from virnucpro.runtime.parallel import ordered_map

def worker_pid(_):
    time.sleep(0.1)
    return os.getpid()

if __name__ == "__main__":
    for pid in ordered_map(worker_pid, range(10000), 2):
        print(pid, flush=True)
"""


def running(pid):
    """Whether `pid` is a process that still runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_workers_of_a_killed_job_end_with_it(tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    job = subprocess.Popen(
        [sys.executable, "job.py"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    workers = set()
    while len(workers) < 2:
        workers.add(int(job.stdout.readline()))
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their job"
        time.sleep(0.1)


def end_with_snakemake(env):
    code = "from virnucpro.runtime.lifeline import end_with_snakemake; end_with_snakemake()"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_a_job_not_started_by_the_workflows_snakemake_says_so():
    env = {k: v for k, v in os.environ.items() if k != SNAKEMAKE_PID}
    unset = end_with_snakemake(env)
    assert unset.returncode != 0
    assert f"{SNAKEMAKE_PID} is not set: a virnucpro job runs under the workflow's" in unset.stderr

    with subprocess.Popen(["sleep", "60"]) as stranger:  # a process, but not its ancestor
        elsewhere = end_with_snakemake({**env, SNAKEMAKE_PID: str(stranger.pid)})
        stranger.kill()
    assert elsewhere.returncode != 0
    assert f"Snakemake (pid {stranger.pid}) is not an ancestor of process" in elsewhere.stderr
