"""Samples cut from real sequence for the benchmarks: short reads at random positions on both
strands, and contigs of random lengths."""

import gzip
from pathlib import Path

import numpy as np

from virnucpro.io.atomic import atomic_path
from virnucpro.io.fasta import read_records
from virnucpro.sequences.frames import reverse_complement

READS_PER_DRAW = 1 << 18  # reads drawn and cut at once: vectorized, with bounded memory
RECORDS_PER_WRITE = 100_000  # FASTA records joined into one write
# A, C, G and T complemented, every other letter kept, as
# virnucpro.sequences.frames.reverse_complement
_COMPLEMENT = np.arange(256, dtype=np.uint8)
_COMPLEMENT[np.frombuffer(b"ACGT", np.uint8)] = np.frombuffer(b"TGCA", np.uint8)


def read_genomes(directory):
    """The uppercase sequences of every FASTA file in `directory` (e.g. DeepVirFinder's
    fragments)."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix in (".fa", ".fasta", ".fna"))
    return [r.sequence.upper() for path in files for r in read_records(path)]


def _strand(sequence, rng):
    return reverse_complement(sequence) if rng.random() < 0.5 else sequence


def reads(genomes, n, length, seed):
    """Yield (id, sequence) of n reads of `length` bases, each from a genome chosen by its length
    at a random position, on a random strand.

    Drawn READS_PER_DRAW at a time with numpy (genome, start and strand of every read of a draw
    at once), so ten million reads take seconds and a caller may stop early; this gives other
    reads for a seed than the one-read-at-a-time draw before it did (the same distribution)."""
    rng = np.random.default_rng(seed)
    usable = [g for g in genomes if len(g) >= length]
    sizes = np.array([len(g) for g in usable], dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    spans = sizes - length + 1
    # row i: the `length` bases from base i of all genomes joined (a view, nothing copied)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.frombuffer("".join(usable).encode("ascii"), np.uint8), length
    )
    for first in range(0, n, READS_PER_DRAW):
        count = min(READS_PER_DRAW, n - first)
        picks = rng.choice(len(usable), size=count, p=spans / spans.sum())
        cut = windows[offsets[picks] + rng.integers(0, spans[picks])]
        reverse = rng.random(count) < 0.5
        cut[reverse] = _COMPLEMENT[cut[reverse, ::-1]]
        texts = cut.view(f"S{length}").ravel().astype(f"U{length}").tolist()
        yield from zip((f"read{i}" for i in range(first, first + count)), texts, strict=True)


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
    """Write (id, sequence) records, each sequence on one line, RECORDS_PER_WRITE at a time,
    gzip-compressed if the name ends .gz; the file appears under its name only when whole, so a
    benchmark that keeps its samples never reuses one cut short."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with atomic_path(path) as tmp, opener(tmp, "wt") as out:
        block = []
        for name, sequence in records:
            block.append(f">{name}\n{sequence}\n")
            if len(block) == RECORDS_PER_WRITE:
                out.write("".join(block))
                block = []
        out.write("".join(block))
