"""Samples cut from real sequence for the benchmarks: short reads at random positions on both
strands, and contigs of random lengths."""

import gzip
from pathlib import Path

import numpy as np

from virnucpro.fasta import read_records
from virnucpro.frames import reverse_complement


def read_genomes(directory):
    """The uppercase sequences of every FASTA file in `directory` (e.g. DeepVirFinder's
    fragments)."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix in (".fa", ".fasta", ".fna"))
    return [r.sequence.upper() for path in files for r in read_records(path)]


def _strand(sequence, rng):
    return reverse_complement(sequence) if rng.random() < 0.5 else sequence


def reads(genomes, n, length, seed):
    """Yield (id, sequence) of n reads of `length` bases, each from a genome chosen by its length
    at a random position, on a random strand."""
    rng = np.random.default_rng(seed)
    usable = [g for g in genomes if len(g) >= length]
    weights = np.array([len(g) - length + 1 for g in usable], dtype=np.float64)
    picks = rng.choice(len(usable), size=n, p=weights / weights.sum())
    for i, pick in enumerate(picks):
        start = rng.integers(0, len(usable[pick]) - length + 1)
        yield f"read{i}", _strand(usable[pick][start : start + length], rng)


def contigs(genomes, n, low, high, seed):
    """Yield (id, sequence) of n contigs of low..high bases (uniform), each joined from random
    genomes until long enough, cut at a random offset, on a random strand."""
    rng = np.random.default_rng(seed)
    for i, length in enumerate(rng.integers(low, high + 1, n)):
        parts, total = [], 0
        while total < length + 1:
            genome = genomes[rng.integers(len(genomes))]
            parts.append(genome)
            total += len(genome)
        joined = "".join(parts)
        start = rng.integers(0, len(joined) - length + 1)
        yield f"contig{i}", _strand(joined[start : start + length], rng)


def write_fasta(records, path):
    """Write (id, sequence) records, 60 letters a line, gzip-compressed if the name ends .gz."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as out:
        for name, sequence in records:
            out.write(f">{name}\n")
            for start in range(0, len(sequence), 60):
                out.write(sequence[start : start + 60] + "\n")
