"""How many shards to cut a sample into when the config says `shards: auto`.

Each shard is one ESM-2 job and one DNABERT-S job. A job costs a fixed start (Python, model
load, compiled-kernel cache, tokenizing, writing), measured at about 17 s for ESM-2 3B and 12 s
for DNABERT-S on an H200 (benchmarks/results/2026-11-21-h200-stages.json), on top of the work
(about 100,000 ESM-2 tokens a second). More shards spread a sample over more GPUs and make a
failed job cheaper to redo; fewer shards spend less on those fixed starts. A shard of 30
million ESM-2 tokens (about 180,000 frames of 500 bp chunks, 5 minutes on an H200) keeps the
fixed part under 10%; the count is then rounded up to a multiple of the GPUs so each gets the
same number of equal shards.

The shard count has to be known before the run (no checkpoint), so it is estimated from the
size of the input files, for the largest sample: about one kept frame per chunk.
"""

import math
import struct
from pathlib import Path

TOKENS_PER_SHARD = 30_000_000
FRAMES_PER_CHUNK = 1.0
GZIP_EXPANSION = 3  # a floor for DNA FASTA; the gzip trailer gives the size mod 4 GiB


def estimated_bases(path):
    """About how many bases (and header bytes) a FASTA file holds, without reading it."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return size
        handle.seek(-4, 2)
        (modulo_4gib,) = struct.unpack("<I", handle.read(4))
    return max(modulo_4gib, GZIP_EXPANSION * size)


def estimated_esm2_tokens(path, chunk_size):
    """ESM-2 tokens of a sample: frames per chunk times a chunk's residues plus two."""
    chunks = estimated_bases(path) / chunk_size
    return chunks * FRAMES_PER_CHUNK * (chunk_size // 3 + 2)


def default_shards(samples, gpus):
    """Shards per sample for `samples` [(fasta, chunk_size)] on `gpus` GPUs (0 on a cluster or
    a CPU: the count then follows the size alone)."""
    tokens = max((estimated_esm2_tokens(f, c) for f, c in samples), default=0)
    by_size = max(1, math.ceil(tokens / TOKENS_PER_SHARD))
    per_round = max(1, gpus)
    return math.ceil(by_size / per_round) * per_round
