"""How many shards (embedding jobs) a sample is cut into when the config says `shards: auto`,
and how the work of its frames is weighed to cut them evenly.

The work of a frame is the GPU time of the models the sample's classifier takes: ESM-2's
tokens and DNABERT-S's, each at its rate on a reference GPU, so that a sample classified on
DNABERT-S's features alone, whose frames cost a fraction of ESM-2's, is cut into few shards.
The count is a function of the sample's own input, chunking and models, never of the machine
or of the other samples: a sample's shards, and so its finished embeddings, stay what they are
when samples are added to the sheet, when the GPUs change, or when a run moves between a
workstation and a cluster. It is fixed before the run (the job graph is known from the start),
from an estimate of the sample's work.

A shard of SHARD_SECONDS keeps an embedding job's fixed start (process, model load, compiled
kernels, the part of it the next job cannot hide) to a few percent of the job. Counts past two
are rounded up to 4, 8 and then multiples of 8, so that shards divide evenly over 1, 2, 4 or 8
GPUs.
"""

import io
import math
from pathlib import Path

import numpy as np
from Bio.SeqIO.FastaIO import SimpleFastaParser

from ..io import fastq
from ..io.compressed import decompressor, format_of
from ..io.fasta import is_fastq
from ..sequences.chunking import chunk_spans
from ..sequences.frames import kept_frame_sizes

# Tokens a second each model computes in fp16 in an embedding job's loop on the reference GPU,
# one H200 (benchmarks/results/2026-11-22-end-to-end.md, 2026-11-21-h200.md): they weigh the
# models against each other; on another GPU every shard takes as much longer.
TOKENS_PER_SECOND = {"esm2": 92_000, "dnabert_s": 1_350_000}
# DNABERT-S's BPE vocabulary cuts the frames of real genomes into tokens of about this many
# bases: the reads sample's tokens over its frames' bases in
# benchmarks/results/2026-11-22-end-to-end.md
BASES_PER_DNABERT_S_TOKEN = 4.5
SHARD_SECONDS = 180
SAMPLED_BYTES = 64 * 1024  # of the sample's text, chunked and translated for the estimate
# of a compressed sample's text, decompressed to measure its text per compressed byte (which
# the first kilobytes of an xz or bzip2 stream do not show well)
RATIO_BYTES = 256 * 1024
_READ = 4096  # compressed bytes fed to the decompressor at a time
# The most tokens a byte of text can give each model (six frames of a third of a residue, or of
# up to a base a token, per base, and their special tokens): a plain file too small to hold a
# shard's work at these rates needs no estimate
_MOST_TOKENS_PER_BYTE = {"esm2": 4, "dnabert_s": 8}


def esm2_tokens(residues):
    """Tokens ESM-2 computes for proteins of `residues` residues: <cls>, every residue (the
    original attends over whole proteins), <eos>; as models.esm2.tokenize encodes them."""
    return np.asarray(residues, dtype=np.int64) + 2


def dnabert_s_tokens(bases):
    """DNABERT-S's tokens for frames of `bases` bases, estimated: [CLS], the BPE tokens, [SEP]."""
    return np.asarray(bases, dtype=np.float64) / BASES_PER_DNABERT_S_TOKEN + 2


def frame_seconds(residues, bases, models):
    """Reference GPU seconds to embed frames of `residues` residues and `bases` bases with
    `models` (kinds: esm2, dnabert_s), one value per frame."""
    seconds = np.zeros(len(residues))
    if "esm2" in models:
        seconds += esm2_tokens(residues) / TOKENS_PER_SECOND["esm2"]
    if "dnabert_s" in models:
        seconds += dnabert_s_tokens(bases) / TOKENS_PER_SECOND["dnabert_s"]
    return seconds


def shard_count(seconds):
    """Shards for a sample of `seconds` of GPU work: 1, 2, 4, 8, then multiples of 8."""
    needed = max(1, math.ceil(seconds / SHARD_SECONDS))
    if needed <= 2:
        return needed
    if needed <= 8:
        return 1 << (needed - 1).bit_length()
    return math.ceil(needed / 8) * 8


def shards_for_sample(fasta, chunk_size, mode, models):
    """The shard count of a sample; a plain file too small to hold a shard's work at the most
    work a byte can give is one shard without being read."""
    path = Path(fasta)
    if path.is_file() and format_of(path) is None:
        most = sum(_MOST_TOKENS_PER_BYTE[m] / TOKENS_PER_SECOND[m] for m in models)
        if path.stat().st_size * most <= SHARD_SECONDS:
            return 1
    return shard_count(estimated_seconds(fasta, chunk_size, mode, models))


def estimated_seconds(fasta, chunk_size, mode, models):
    """Reference GPU seconds of a sample's frames with `models`, from its first SAMPLED_BYTES
    of text: those records are chunked and their kept frames sized as the workflow does, and
    their work per byte of text is scaled to the text the whole file holds (its size, times the
    text per compressed byte of its start when compressed). That takes the start of a file to
    be like the rest, as it is for reads, which a sequencer writes in no order of their
    source. A file that cannot be read estimates as empty; the preparing stage reports what is
    wrong."""
    path = Path(fasta)
    if not path.is_file():
        return 0.0
    data, text_per_byte = _leading_text(path)
    if not data:
        return 0.0
    residues, bases = [], []
    text = data.decode("utf-8-sig", errors="replace")  # as read
    if is_fastq(data):
        sequences = fastq.sequences(text)
    else:
        sequences = (s for _, s in SimpleFastaParser(io.StringIO(text, newline=None)))
    for sequence in sequences:
        sequence = "".join(sequence.split()).upper()
        for start, end in chunk_spans(len(sequence), chunk_size, mode):
            for protein, nucleotide in kept_frame_sizes(sequence[start:end]):
                residues.append(protein)
                bases.append(nucleotide)
    seconds = float(frame_seconds(residues, bases, models).sum())
    return seconds / len(data) * text_per_byte * path.stat().st_size


def _leading_text(path):
    """The first SAMPLED_BYTES of a FASTA or FASTQ file's text (bytes), and the bytes of text
    per byte of the file over its first RATIO_BYTES of text.

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
            while produced < RATIO_BYTES:
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
        except Exception:  # each format raises its own errors; the preparing stage names them
            pass
        consumed -= len(pending) + (len(stream.unused_data) if stream.eof else 0)
    return b"".join(pieces), produced / consumed if consumed > 0 else 0.0
