"""Failure and resume: a shard that fails, a run that is killed, a second run beside a live one,
and what a rerun redoes."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DVF
from workflow_runs import DEMO, aggregation, planned, set_config, snakemake

PROFILE = ["--profile", "profiles/local", *DEMO]

pytestmark = pytest.mark.slow  # each runs the demo


def started_in_new_session(workdir, output):
    """Snakemake with the local profile, in a session of its own, writing to `output`."""
    with open(output, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *PROFILE],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def embedding_times(workdir):
    return {p: p.stat().st_mtime_ns for p in (workdir / "results").glob("*/embeddings/*.h5")}


def writers(prefix):
    """{path: id of the process holding it open} of the open files whose path starts with
    `prefix`."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                if (path := os.readlink(fd.path)).startswith(prefix):
                    found[path] = int(pid)
        except OSError:  # it ended, or closed the file, while we looked
            continue
    return found


def test_keep_going_finishes_the_other_shards_and_a_rerun_redoes_only_the_failed_one(workdir):
    embeddings = workdir / "results" / "demo_500" / "embeddings"
    run = started_in_new_session(workdir, workdir / "run.log")  # the profile keeps going
    deadline = time.monotonic() + 120
    # both of its files begun (stages.embed opens them together, then waits for the models)
    while len(begun := writers(f"{embeddings}/.shard_0001.")) < 2:
        assert run.poll() is None and time.monotonic() < deadline, "no job wrote shard_0001"
        time.sleep(0.02)
    (job,) = set(begun.values())
    os.kill(job, signal.SIGKILL)  # the job dies halfway through writing, as the OOM killer does
    assert run.wait() != 0, (workdir / "run.log").read_text()
    assert sorted(p.name for p in embeddings.glob("*.h5")) == [
        "shard_0000.dnabert_s.h5",
        "shard_0000.esm2.h5",
    ]  # nothing half-written under an output's name
    assert sorted(map(str, embeddings.glob(".*.tmp"))) == sorted(begun)  # what it was writing
    assert (workdir / "results" / "demo_300_legacy" / "records.tsv").exists()
    assert not (workdir / "results" / "demo_500" / "records.tsv").exists()
    finished = embedding_times(workdir)

    assert sorted(planned(workdir)) == sorted(
        [
            ("embed_shard", "results/demo_500/embeddings/shard_0001.dnabert_s.h5"),
            *aggregation("demo_500"),
        ]
    )
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {p: embedding_times(workdir)[p] for p in finished} == finished
    assert (workdir / "results" / "demo_500" / "records.tsv").exists()
    assert list(embeddings.glob(".*.tmp")) == []  # the killed job's, removed by its rerun


def test_a_killed_run_finishes_with_the_documented_recovery_without_redoing_shards(workdir):
    output = workdir / "run.log"
    run = started_in_new_session(workdir, output)
    deadline = time.monotonic() + 120
    while output.read_text().count("(Rule: embed_shard") < 2 and run.poll() is None:
        assert time.monotonic() < deadline, "no embedding job finished in two minutes"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its running jobs, as if the node died
    run.wait()
    assert not (workdir / "results" / "demo_500" / "records.tsv").exists()

    locked = snakemake(workdir, *PROFILE, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    # the recovery the README documents: unlock, then the same command again
    snakemake(workdir, *PROFILE, "--unlock")
    redo = {out for rule, out in planned(workdir, "--rerun-incomplete") if rule.startswith("embed")}
    finished = {
        p: t for p, t in embedding_times(workdir).items() if str(p.relative_to(workdir)) not in redo
    }
    assert finished, "Snakemake recorded no finished shard before the kill"
    rerun = snakemake(workdir, *PROFILE)
    assert "Shell command: None" not in rerun.stdout + rerun.stderr  # no noise line per job
    assert {p: embedding_times(workdir)[p] for p in finished} == finished
    for sample in ("demo_500", "demo_300_legacy"):
        assert (workdir / "results" / sample / "records.tsv").exists()
    assert planned(workdir) == []


def session_processes(session):
    """The processes of a session that still run (a zombie has ended)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, _, sid = stat.read_text().rpartition(")")[2].split()[:4]
        except OSError:  # it ended while we looked
            continue
        if int(sid) == session and state != "Z":
            found.append(int(stat.parent.name))
    return found


def test_killing_snakemake_alone_ends_its_jobs_and_the_recovery_leaves_nothing_half_written(
    workdir,
):
    # one sample of 900 frames in one shard: its embedding job writes for seconds
    shutil.copy(DVF / "virus_val.fa", workdir)
    (workdir / "config" / "demo" / "samples.tsv").write_text(
        "sample\tfasta\tchunk_size\tchunking\ndvf\tvirus_val.fa\t300\toverlap\n"
    )
    set_config(workdir, shards=1)
    embeddings = workdir / "results" / "dvf" / "embeddings"
    run = started_in_new_session(workdir, workdir / "run.log")
    deadline = time.monotonic() + 120
    while not list(embeddings.glob(".*.h5.*.tmp")):  # the embedding job is writing
        assert run.poll() is None and time.monotonic() < deadline, "no embedding job started"
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)  # Snakemake alone, as `kill -9` or the OOM killer does
    run.wait()

    deadline = time.monotonic() + 10
    while jobs := session_processes(run.pid):
        assert time.monotonic() < deadline, f"jobs {jobs} outlived Snakemake"
        time.sleep(0.1)
    assert list(embeddings.glob("*.h5")) == []  # cut off, not left to finish beside a rerun
    assert list(embeddings.glob(".*.h5.*.tmp"))  # what it was writing
    log = (workdir / "logs" / "embed_shard" / "dvf" / "shard_0000.log").read_text()
    assert f"Snakemake (pid {run.pid}) has ended, so this process" in log

    snakemake(workdir, *PROFILE, "--unlock")
    snakemake(workdir, *PROFILE)
    assert list(workdir.glob("results/**/.*.tmp")) == []
    assert sorted(p.name for p in embeddings.iterdir()) == [
        "shard_0000.dnabert_s.h5",
        "shard_0000.esm2.h5",
    ]
    assert (workdir / "results" / "dvf" / "records.tsv").stat().st_size > 0
    assert planned(workdir) == []


def files_and_times(directory):
    """Every file under `directory`, temporary ones included, with its time stamp."""
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_a_second_run_started_and_unlocked_while_the_first_embeds_starts_no_job(workdir):
    """The first run is held still while it embeds (SIGSTOP) and a second is started, the
    directory unlocked as Snakemake's message suggests, and the second started again: it starts
    no job, touches no file and says why and what to do; the first, let go on, finishes with
    every file it had made."""
    first = started_in_new_session(workdir, workdir / "first.log")
    deadline = time.monotonic() + 120
    while not list(workdir.glob("results/*/embeddings/.*.h5.*.tmp")):
        assert first.poll() is None and time.monotonic() < deadline, "no embedding job started"
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGSTOP)  # Snakemake and its jobs
    try:
        before = files_and_times(workdir / "results")
        locked = snakemake(workdir, *PROFILE, check=False)
        unlocked = snakemake(workdir, *PROFILE, "--unlock", check=False)
        second = snakemake(workdir, *PROFILE, check=False)
        dry_run = snakemake(workdir, *PROFILE, "--dry-run", check=False)
        assert files_and_times(workdir / "results") == before
    finally:
        os.killpg(first.pid, signal.SIGCONT)

    holder = f"Snakemake pid {first.pid} on "
    note = f"Note: another run of the workflow is running in this directory: {holder}"
    for result in (locked, unlocked, dry_run):
        assert note in result.stdout + result.stderr, result.stdout + result.stderr
    assert locked.returncode != 0 and unlocked.returncode == 0 and dry_run.returncode == 0
    assert second.returncode != 0
    refused = (
        f"another run of the workflow is running in this directory ({workdir}): {holder}",
        "This run starts no job beside it, so that neither removes or rewrites the other's "
        "files, whatever --unlock does. Let that run finish, or end its Snakemake (its jobs end "
        "with it), then run the same command again.",
    )
    said = second.stdout + second.stderr
    assert all(part in said for part in refused), said
    assert "Traceback" not in said and 'File "' not in said, said  # the message alone
    assert not re.search(r"^localrule \w+:", said, re.M)  # no job started

    assert first.wait(timeout=300) == 0, (workdir / "first.log").read_text()
    assert re.search(r"^\d+ of \d+ steps \(100%\) done$", (workdir / "first.log").read_text(), re.M)
    finished = {p: stamp for p, stamp in before.items() if not p.name.endswith(".tmp")}
    assert finished and {p: p.stat().st_mtime_ns for p in finished} == finished  # none lost
    assert planned(workdir) == []
