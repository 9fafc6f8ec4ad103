"""Peak memory of an embedding job's CPU phase (embed.embed_shard up to its GPU lease) on a shard
of reads: N frames of 148 bases and 49 residues (a 150 bp read's), DNABERT-S alone (the
published tokenizer, full-size random weights), in a fresh process stopped where it would wait
for its lease. The job's memory is then the shard's: its ordinals, ids and tokens.

    python benchmarks/cpu_phase_memory.py --frames 5000000 --workdir /tmp/cpu-phase \
        > benchmarks/results/<date>-cpu-phase-memory.txt
"""

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from virnucpro.io.shards import frame_table

REPO = Path(__file__).resolve().parents[1]
BASES, RESIDUES = 148, 49
WRITE_ROWS = 100_000


def write_shard(workdir, frames):
    """A frame table of one shard of `frames` random frames, and its manifest."""
    rng = np.random.default_rng(0)
    dna, amino_acids = (
        np.frombuffer(b"ACGT", np.uint8),
        np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", np.uint8),
    )
    paths = workdir / "frames.tsv", workdir / "manifest.tsv"
    with frame_table(*paths, 1, ("dnabert_s",)) as table:
        for start in range(0, frames, WRITE_ROWS):
            n = min(WRITE_ROWS, frames - start)
            nucleotides = dna[rng.integers(0, 4, (n, BASES))]
            proteins = amino_acids[rng.integers(0, 20, (n, RESIDUES))]
            rows = b"".join(
                b"SRR0000000.%d_chunk_1F%d\t%s\t%s\n"
                % (start + i, 1 + i % 3, nucleotides[i].tobytes(), proteins[i].tobytes())
                for i in range(n)
            )
            table.add(rows, np.full(n, RESIDUES), np.full(n, BASES))


class StopAtTheLease(Exception):
    """The CPU phase is done: the job asks for its lease."""


def peak_rss():
    """This process's peak resident memory in bytes: the kernel's high-water mark, which,
    unlike getrusage's, a process started by another does not inherit from it."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


class MeasuringLease:
    """Busy at the job's start; taking it measures the process's peak memory and ends the job."""

    def try_take(self):
        return False

    def take(self):
        raise StopAtTheLease(peak_rss())

    def release(self):
        pass


def measure(workdir):
    """In this (fresh) process: the job's CPU phase on the shard; prints its figures."""
    import torch

    from virnucpro.stages.embed import embed_shard

    torch.set_num_threads(2)
    imported = peak_rss()
    started = time.perf_counter()
    try:
        embed_shard(
            workdir / "frames.tsv",
            workdir / "manifest.tsv",
            "shard_0000",
            {"dnabert_s": workdir / "shard_0000.dnabert_s.h5"},
            {"dnabert_s": workdir / "DNABERT-S"},
            lease=MeasuringLease(),
        )
    except StopAtTheLease as stop:
        peak = stop.args[0]
    print(f"process after its imports: peak RSS {imported / 2**30:.2f} GiB")
    print(f"CPU phase: {time.perf_counter() - started:.0f} s, peak RSS {peak / 2**30:.2f} GiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5_000_000)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.workdir)
        return
    from virnucpro.demo.random_checkpoints import write_dnabert_s
    from virnucpro.models.architectures import DNABertConfig

    args.workdir.mkdir(parents=True, exist_ok=True)
    write_shard(args.workdir, args.frames)
    tokenizer = REPO / "tests" / "data" / "dnabert-s" / "tokenizer.json"
    write_dnabert_s(args.workdir / "DNABERT-S", DNABertConfig(), tokenizer)
    size = (args.workdir / "frames.tsv").stat().st_size
    print(f"{platform.node()}, {platform.processor() or platform.machine()}")
    print(f"{args.frames} frames of {BASES} bases and {RESIDUES} residues: {size / 2**30:.2f} GiB")
    sys.stdout.flush()
    child = [sys.executable, __file__, "--measure", "--workdir", str(args.workdir)]
    subprocess.run(child, check=True)


if __name__ == "__main__":
    main()
