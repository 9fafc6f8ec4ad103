"""How many shards (embedding jobs) a sample is cut into when the config says `shards: auto`.

The count is a function of the sample's own input and settings alone, never of the machine or
of the other samples: a sample's shards, and so its finished embeddings, stay what they are
when samples are added to the sheet, when the GPUs change, or when a run moves between a
workstation and a cluster. It is fixed before the run (the job graph is known from the start),
from an estimate of the sample's ESM-2 tokens, which are more than 95% of the work.

Each job pays a fixed start (process, model load, compiled kernels) on top of its work, about
100,000 ESM-2 tokens a second on an H200 (benchmarks/results/). A shard of 16 million tokens
keeps that start to a few percent of the job, and cuts a sample of 300,000 short reads (27
million tokens) in two, one per GPU of a two-GPU machine. Counts past two are rounded up to 4,
8 and then multiples of 8, so that equal shards divide evenly over 1, 2, 4 or 8 GPUs.
"""

import io
import math
import zlib
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

from .chunking import chunk_spans
from .frames import kept_frames
from .sharding import esm2_tokens

TOKENS_PER_SHARD = 16_000_000
SAMPLED_BYTES = 256 * 1024  # of the sample's text, chunked and translated for the estimate
_GZIP_MAGIC = b"\x1f\x8b"
_READ = 4096  # compressed bytes fed to the decompressor at a time


def shard_count(tokens):
    """Shards for a sample of `tokens` ESM-2 tokens: 1, 2, 4, 8, then multiples of 8."""
    needed = max(1, math.ceil(tokens / TOKENS_PER_SHARD))
    if needed <= 2:
        return needed
    if needed <= 8:
        return 1 << (needed - 1).bit_length()
    return math.ceil(needed / 8) * 8


def estimated_esm2_tokens(fasta, chunk_size, mode):
    """ESM-2 tokens of a sample, estimated from its first SAMPLED_BYTES of text: those records
    are chunked and translated as the workflow does, and their tokens per byte of the file
    (compressed or not) are scaled to the file's size. That takes the start of a file to be
    like the rest, as it is for reads, which a sequencer writes in no order of their source.
    A file that cannot be read estimates as empty; the chunking stage reports what is wrong."""
    path = Path(fasta)
    if not path.is_file():
        return 0
    text, consumed = _leading_text(path)
    if consumed == 0:
        return 0
    tokens = 0
    for _, sequence in SimpleFastaParser(io.StringIO(text)):
        sequence = "".join(sequence.split()).upper()
        for start, end in chunk_spans(len(sequence), chunk_size, mode):
            frames = kept_frames(sequence[start:end])
            tokens += int(esm2_tokens([len(f.protein) for f in frames]).sum())
    return tokens * path.stat().st_size / consumed


def _leading_text(path):
    """The first SAMPLED_BYTES of a FASTA file's text, and how many bytes of the file they took.

    Hand-written over zlib rather than the gzip module, whose read-ahead hides how much of the
    compressed file a prefix took; members are followed, as bgzip writes many."""
    with open(path, "rb") as handle:
        if handle.read(2) != _GZIP_MAGIC:
            handle.seek(0)
            data = handle.read(SAMPLED_BYTES)
            return data.decode("utf-8", errors="replace"), len(data)
        handle.seek(0)
        pieces, size, consumed, pending = [], 0, 0, b""
        decompressor = zlib.decompressobj(wbits=31)
        try:
            while size < SAMPLED_BYTES:
                if decompressor.eof:  # the next member starts in what the last one left
                    pending = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                if not pending:
                    pending = handle.read(_READ)
                    consumed += len(pending)
                    if not pending:
                        break
                piece = decompressor.decompress(pending, SAMPLED_BYTES - size)
                pending = decompressor.unconsumed_tail
                pieces.append(piece)
                size += len(piece)
        except zlib.error:
            pass  # a damaged file: the chunking stage names the problem
        consumed -= len(pending) + (len(decompressor.unused_data) if decompressor.eof else 0)
    return b"".join(pieces).decode("utf-8", errors="replace"), max(consumed, 0)


def shards_for_sample(fasta, chunk_size, mode):
    return shard_count(estimated_esm2_tokens(fasta, chunk_size, mode))
