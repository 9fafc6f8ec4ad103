"""A full disk: the job stops with one line naming the file it was writing, the space left and
what to do, keeps nothing half-written, and the same command run once there is room finishes.

The disk is a real one: a tmpfs of a few kilobytes, mounted in a mount namespace of a child
process (`unshare`), which the kernel lets any user make where user namespaces are allowed."""

import json
import re
import subprocess
import sys

import pytest

from workflow_runs import DEMO

PROFILE = ["--profile", "profiles/local", *DEMO]
FULL = (
    r"{} could not be written: No space left on device \(\d+(\.\d)? (bytes|kB) left on its "
    r"filesystem\)\. Free space, then run the same command again\."
)


def in_a_small_filesystem(directory, size, command, cwd):
    """Run `command` (a shell's) in `cwd` where `directory` is a tmpfs of `size` (such as
    "40k"), which `command` may remount larger; the filesystem ends with it."""
    mount = ["unshare", "--map-root-user", "--mount", "sh", "-c"]
    tmpfs = f"mkdir -p {directory} && mount -t tmpfs -o size={size} tmpfs {directory}"
    probe = subprocess.run([*mount, tmpfs], cwd=cwd, capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no mount namespace to make a small filesystem in: {probe.stderr}")
    return subprocess.run(
        [*mount, f"{tmpfs} && {command}"], cwd=cwd, capture_output=True, text=True
    )


# Each writer fills the small filesystem at argv[1]; printed: what each raised, and the files
# left after it, temporary ones included.
WRITERS = """
import json, os, sys
from pathlib import Path
import numpy as np
from virnucpro.io.atomic import atomic_open
from virnucpro.models.download import download
from virnucpro.io.h5store import embedding_writer

full, big = Path(sys.argv[1]), Path(sys.argv[2])

def table():
    with atomic_open(full / "records.tsv") as out:
        out.write("record_id\\n" + "r\\n" * 100_000)

def the_first_of_two():  # opened first, so its writer's block is not the innermost
    with atomic_open(full / "chunks.tsv", "wb") as chunks:
        with atomic_open(full / "records.tsv") as records:
            records.write("record_id\\n")
            chunks.write(b"c\\n" * 100_000)

def embeddings():
    ids = [f"f{i}" for i in range(1000)]
    with embedding_writer(full / "shard_0000.esm2.h5", range(1000), ids) as out:
        out.vectors(96, np.float32)
        out.write(0, np.ones((1000, 96), dtype=np.float32))

def model():
    download(big.as_uri(), full / "models" / "model.bin")

said = {}
for writer in (table, the_first_of_two, embeddings, model):
    try:
        writer()
        said[writer.__name__] = ["no error", []]
    except Exception as error:
        left = sorted(str(p.relative_to(full)) for p in full.rglob("*") if p.is_file())
        said[writer.__name__] = [f"{type(error).__name__}: {error}", left]
print(json.dumps(said))
"""


@pytest.mark.slow
def test_a_write_that_finds_the_disk_full_names_its_file_and_keeps_nothing(tmp_path):
    full, big, writers = tmp_path / "full", tmp_path / "model.bin", tmp_path / "writers.py"
    big.write_bytes(bytes(200_000))
    writers.write_text(WRITERS)
    result = in_a_small_filesystem(
        full, "40k", f"{sys.executable} {writers} {full} {big}", tmp_path
    )
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    named = {
        "table": "records.tsv",
        "the_first_of_two": "chunks.tsv",
        "embeddings": "shard_0000.esm2.h5",
        "model": "models/model.bin",
    }
    for writer, name in named.items():
        message, left = said[writer]
        assert re.fullmatch("DiskFull: " + FULL.format(re.escape(str(full / name))), message)
        assert left == [], writer  # no temporary file, nor the file half-written


@pytest.mark.slow
def test_a_run_that_fills_the_disk_says_so_in_one_line_and_finishes_once_there_is_room(workdir):
    """The demo with `results/` on a filesystem of 40 kB: each failed job's log ends with the
    one line; nothing half-written is left; once the filesystem is larger, the same command
    finishes."""
    snakemake = f"{sys.executable} -m snakemake {' '.join(PROFILE)}"
    result = in_a_small_filesystem(
        "results",
        "40k",
        f"{snakemake} > full.log 2>&1; echo failed $?; cp -r logs failed_logs; "
        "find results -name '.*.tmp'; "
        f"mount -o remount,size=64m results && {snakemake} > again.log 2>&1; echo again $?",
        workdir,
    )
    failed, *left, again = result.stdout.splitlines()
    said = (workdir / "full.log").read_text()
    assert failed == "failed 1", said
    assert left == []  # no temporary file
    assert again == "again 0", (workdir / "again.log").read_text()

    failures = [
        text.rstrip("\n").rpartition("\n")[2]
        for log in (workdir / "failed_logs").glob("**/*.log")
        if "Traceback" in (text := log.read_text())
    ]
    assert failures, said
    for line in failures:  # each failed job's, which Snakemake shows
        assert re.fullmatch(
            r"virnucpro\.io\.disk_full\.DiskFull: " + FULL.format(r"results/\S+"), line
        )
        assert line.partition(": ")[2] in said
