"""The first two stages: cut each record into chunks, then translate the chunks and keep the
frames that are scored. Each is a function of files to files."""

import csv
import functools
import io
import itertools
import logging

from Bio.SeqIO.FastaIO import SimpleFastaParser

from .atomic import atomic_open
from .chunking import chunk_spans
from .fasta import read_records, write_unwrapped, write_wrapped
from .frames import kept_frames, no_frame_reason
from .parallel import ordered_map
from .tables import tsv_writer

log = logging.getLogger(__name__)

REASON_EMPTY = "empty sequence"
RECORD_COLUMNS = ("record_id", "length", "chunks", "reason")
SPAN_COLUMNS = ("chunk_id", "record_id", "start", "end")
CHUNK_COLUMNS = ("chunk_id", "record_id", "start", "end", "length", "frames", "reason")
BLOCK_CHUNKS = 2048  # chunks a worker translates per task: about 1 MB of sequence


def chunk_sample(fasta, chunk_size, mode, chunks_fa, records_tsv, spans_tsv):
    """Cut every record of `fasta` into chunks.

    Writes the chunks as the original wrote them (`{id}_chunk_{k}`, case kept, 60 letters a
    line), one row per input record, and one row per chunk with its 1-based inclusive span.
    """
    n_records = n_chunks = 0
    with (
        atomic_open(chunks_fa) as chunks_out,
        atomic_open(records_tsv) as records_out,
        atomic_open(spans_tsv) as spans_out,
    ):
        records = tsv_writer(records_out)
        spans = tsv_writer(spans_out)
        records.writerow(RECORD_COLUMNS)
        spans.writerow(SPAN_COLUMNS)
        for record in read_records(fasta):
            cuts = chunk_spans(len(record.sequence), chunk_size, mode)
            records.writerow(
                (record.id, len(record.sequence), len(cuts), "" if cuts else REASON_EMPTY)
            )
            for k, (start, end) in enumerate(cuts, start=1):
                chunk_id = f"{record.id}_chunk_{k}"
                write_wrapped(chunks_out, chunk_id, record.sequence[start:end])
                spans.writerow((chunk_id, record.id, start + 1, end))
            n_records += 1
            n_chunks += len(cuts)
    if n_records == 0:
        log.warning("%s holds no records: every output of this sample will be empty", fasta)
    log.info(
        "%s: %d records cut into %d chunks of %d bp (%s)",
        fasta,
        n_records,
        n_chunks,
        chunk_size,
        mode,
    )


def translate_sample(chunks_fa, spans_tsv, nucleotide_fa, protein_faa, chunks_tsv, workers=1):
    """Translate every chunk in six frames and write the kept frames in the original's two
    FASTA files (frame nucleotides, frame proteins), plus one row per chunk saying which
    frames it kept, or why none. Blocks of chunks are translated by `workers` processes and
    written in input order, so the output does not depend on `workers`."""
    n_chunks = n_frames = 0
    with (
        open(chunks_fa, encoding="utf-8") as chunks_in,
        open(spans_tsv, encoding="utf-8", newline="") as spans_in,
        atomic_open(nucleotide_fa) as nucleotide_out,
        atomic_open(protein_faa) as protein_out,
        atomic_open(chunks_tsv) as table_out,
    ):
        tsv_writer(table_out).writerow(CHUNK_COLUMNS)
        next(spans_in)  # the header
        translate = functools.partial(_translate_block, f"{chunks_fa} and {spans_tsv}")
        blocks = _blocks(chunks_in, spans_in, BLOCK_CHUNKS)
        for nucleotides, proteins, rows, chunks, frames in ordered_map(translate, blocks, workers):
            nucleotide_out.write(nucleotides)
            protein_out.write(proteins)
            table_out.write(rows)
            n_chunks += chunks
            n_frames += frames
        if next(spans_in, None) is not None:
            raise ValueError(f"{spans_tsv} has more rows than {chunks_fa} has chunks")
    log.info("%d chunks translated, %d frames kept (%d workers)", n_chunks, n_frames, workers)


def _blocks(chunks_in, spans_in, size):
    """(FASTA text, span rows) of `size` chunks at a time, cut at record starts without parsing
    the records, so that the main process only reads and the workers do the rest."""
    lines, n = [], 0
    for line in chunks_in:
        if line.startswith(">"):
            if n == size:
                yield "".join(lines), list(itertools.islice(spans_in, n))
                lines, n = [], 0
            n += 1
        lines.append(line)
    if n:
        yield "".join(lines), list(itertools.islice(spans_in, n))


def _translate_block(files, block):
    """The three outputs' text for one block of chunks, and its chunk and frame counts."""
    fasta_text, span_lines = block
    nucleotide_out, protein_out, table_out = io.StringIO(), io.StringIO(), io.StringIO()
    table = tsv_writer(table_out)
    n_chunks = n_frames = 0
    spans = csv.reader(span_lines, delimiter="\t")
    for (chunk_id, sequence), span in itertools.zip_longest(
        SimpleFastaParser(io.StringIO(fasta_text)), spans
    ):
        if span is None or chunk_id != span[0]:
            raise ValueError(f"{files} disagree at chunk {chunk_id}")
        chunk = sequence.upper()
        frames = kept_frames(chunk)
        for frame in frames:
            write_unwrapped(nucleotide_out, chunk_id + frame.name, frame.nucleotide)
            write_unwrapped(protein_out, chunk_id + frame.name, frame.protein)
        table.writerow(
            (
                *span,
                len(chunk),
                ",".join(frame.name for frame in frames),
                "" if frames else no_frame_reason(chunk),
            )
        )
        n_chunks += 1
        n_frames += len(frames)
    return (
        nucleotide_out.getvalue(),
        protein_out.getvalue(),
        table_out.getvalue(),
        n_chunks,
        n_frames,
    )
