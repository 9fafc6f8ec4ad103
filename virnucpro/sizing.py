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
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

from .chunking import chunk_spans
from .compressed import decompressor, format_of
from .frames import kept_frames
from .sharding import esm2_tokens

TOKENS_PER_SHARD = 16_000_000
SAMPLED_BYTES = 256 * 1024  # of the sample's text, chunked and translated for the estimate
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
    are chunked and translated as the workflow does, and their tokens per byte of text are
    scaled to the text the whole file holds (its size, times the text per compressed byte of
    its start when compressed). That takes the start of a file to be like the rest, as it is
    for reads, which a sequencer writes in no order of their source. A file that cannot be
    read estimates as empty; the chunking stage reports what is wrong."""
    path = Path(fasta)
    if not path.is_file():
        return 0
    data, text_per_byte = _leading_text(path)
    if not data:
        return 0
    tokens = 0
    text = io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=None)  # as read_records
    for _, sequence in SimpleFastaParser(text):
        sequence = "".join(sequence.split()).upper()
        for start, end in chunk_spans(len(sequence), chunk_size, mode):
            frames = kept_frames(sequence[start:end])
            tokens += int(esm2_tokens([len(f.protein) for f in frames]).sum())
    return tokens / len(data) * text_per_byte * path.stat().st_size


def _leading_text(path):
    """The first SAMPLED_BYTES of a FASTA file's text (bytes), and the bytes of text per byte
    of the file at its start.

    Hand-written over streaming decompressors rather than a file reader, whose read-ahead hides
    how much of the compressed file a prefix took. Each piece of the file is decompressed whole,
    so the text counted is all that the bytes read hold, even where a format gives its text a
    block at a time (bzip2: 900 kB); gzip members and the streams or frames of the other formats
    are followed, as bgzip, pbzip2 and pzstd write many."""
    fmt = format_of(path)
    with open(path, "rb") as handle:
        if fmt is None:
            return handle.read(SAMPLED_BYTES), 1.0
        pieces, kept, produced, consumed, pending = [], 0, 0, 0, b""
        stream = decompressor(fmt)
        try:
            while produced < SAMPLED_BYTES:
                if stream.eof:  # the next member starts in what the last one left
                    pending = stream.unused_data
                    stream = decompressor(fmt)
                if not pending:
                    pending = handle.read(_READ)
                    consumed += len(pending)
                    if not pending:
                        break
                piece = stream.decompress(pending)
                pending = b""
                produced += len(piece)
                pieces.append(piece[: SAMPLED_BYTES - kept])
                kept += len(pieces[-1])
        except Exception:  # each format raises its own errors; the chunking stage names them
            pass
        consumed -= len(pending) + (len(stream.unused_data) if stream.eof else 0)
    return b"".join(pieces), produced / consumed if consumed > 0 else 0.0


def shards_for_sample(fasta, chunk_size, mode):
    return shard_count(estimated_esm2_tokens(fasta, chunk_size, mode))
