"""Cut a sample's frames into shards of equal ESM-2 work, one embedding job each.

All frames are sorted by length once, globally, and the sorted list is cut into contiguous
runs of equal token count: every shard then holds frames of similar length (batches pack
densely) and costs its GPU about the same time. ESM-2 tokens are the measure because ESM-2 is
more than 95% of the work (SPEC §6).
"""

import logging
from contextlib import ExitStack

import numpy as np

from .atomic import atomic_open
from .fasta import read_unwrapped
from .tables import read_tsv, tsv_writer

log = logging.getLogger(__name__)

ESM_MAX_RESIDUES = 1024  # fair-esm's truncation_seq_length as the original ran it
SHARD_COLUMNS = ("ordinal", "frame_id", "nucleotide", "protein")
MANIFEST_COLUMNS = ("shard", "frames", "esm2_tokens", "min_residues", "max_residues")
_OPEN_AT_ONCE = 200  # shard files written per pass over the frames, under any fd limit


def esm2_tokens(residues):
    """Tokens ESM-2 spends on a protein: <cls>, residues up to the truncation, <eos>."""
    return np.minimum(residues, ESM_MAX_RESIDUES) + 2


def assign_shards(residues, n_shards):
    """Shard index of each frame: sort by length (longest first, ties by position) and cut the
    sorted list into `n_shards` contiguous runs of about equal token count."""
    residues = np.asarray(residues, dtype=np.int64)
    order = np.lexsort((np.arange(len(residues)), -residues))
    tokens = esm2_tokens(residues[order])
    midpoints = np.cumsum(tokens) - tokens / 2
    total = max(int(tokens.sum()), 1)
    shard_of_sorted = np.minimum((midpoints * n_shards / total).astype(np.int64), n_shards - 1)
    shard = np.empty(len(residues), dtype=np.int64)
    shard[order] = shard_of_sorted
    return shard


def shard_frames(nucleotide_fa, protein_faa, shard_tsvs, manifest_tsv):
    """Write the frames into len(shard_tsvs) shard tables and a manifest of their sizes."""
    with open(protein_faa, encoding="utf-8") as handle:
        residues = np.fromiter((len(p) for _, p in read_unwrapped(handle)), dtype=np.int64)
    shard = assign_shards(residues, len(shard_tsvs))
    for first in range(0, len(shard_tsvs), _OPEN_AT_ONCE):
        group = range(first, min(first + _OPEN_AT_ONCE, len(shard_tsvs)))
        _write_group(nucleotide_fa, protein_faa, shard, {i: shard_tsvs[i] for i in group})
    with atomic_open(manifest_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(MANIFEST_COLUMNS)
        for i, path in enumerate(shard_tsvs):
            mine = residues[shard == i]
            table.writerow(
                (
                    path,
                    len(mine),
                    int(esm2_tokens(mine).sum()),
                    int(mine.min()) if len(mine) else 0,
                    int(mine.max()) if len(mine) else 0,
                )
            )
    log.info(
        "%d frames, %d ESM-2 tokens, in %d shards",
        len(residues),
        int(esm2_tokens(residues).sum()),
        len(shard_tsvs),
    )


def _write_group(nucleotide_fa, protein_faa, shard, paths):
    with ExitStack() as stack:
        writers = {}
        for i, path in paths.items():
            writers[i] = tsv_writer(stack.enter_context(atomic_open(path)))
            writers[i].writerow(SHARD_COLUMNS)
        nucleotides = stack.enter_context(open(nucleotide_fa, encoding="utf-8"))
        proteins = stack.enter_context(open(protein_faa, encoding="utf-8"))
        pairs = zip(read_unwrapped(nucleotides), read_unwrapped(proteins), strict=True)
        for ordinal, ((frame_id, nucleotide), (protein_id, protein)) in enumerate(pairs):
            writer = writers.get(shard[ordinal])
            if writer is not None:
                if frame_id != protein_id:
                    raise ValueError(f"{nucleotide_fa} and {protein_faa} disagree at {frame_id}")
                writer.writerow((ordinal, frame_id, nucleotide, protein))


def read_shard(path):
    """The frames of one shard in input order: ordinals (int64), ids, nucleotides, proteins."""
    rows = list(read_tsv(path))
    ordinals = np.array([int(r.ordinal) for r in rows], dtype=np.int64)
    return (
        ordinals,
        [r.frame_id for r in rows],
        [r.nucleotide for r in rows],
        [r.protein for r in rows],
    )
