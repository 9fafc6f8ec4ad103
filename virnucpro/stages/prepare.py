"""The preparing stage: cut every record into chunks, translate each chunk in six frames, keep
the frames that are scored, and cut those into shards of equal work, in one pass over the input.

The reading process only splits the (decompressed) input into blocks of whole records
(fasta.read_blocks); worker processes parse, check, chunk and translate the blocks, and the
reading process writes their rows in input order. A block is also the unit of the later
stages' work (a "part", listed in parts.tsv with where its rows lie in each table), so that
they too spread over the cores a sample's job is given. Memory holds a few blocks per worker,
whatever the size of the sample.
"""

import functools
import hashlib
import io
import logging
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from ..io.atomic import atomic_open
from ..io.fasta import (
    block_records,
    duplicate_ids_error,
    read_blocks,
    write_unwrapped,
    write_wrapped,
)
from ..io.prepared import CHUNK_FRAME_COLUMNS, INPUT_RECORD_COLUMNS, PART_COLUMNS
from ..io.shards import frame_row, frame_table
from ..io.tables import read_tsv, tsv_writer
from ..runtime.parallel import ordered_map
from ..sequences.chunking import chunk_spans
from ..sequences.frames import kept_frames, no_frame_reason

log = logging.getLogger(__name__)

REASON_EMPTY = "empty sequence"
# the original's intermediate files, written where asked for (output.keep_intermediate)
INTERMEDIATES = ("chunks_fa", "nucleotide_fa", "protein_faa")


@dataclass(frozen=True)
class _Prepared:
    """What a worker makes of one block: each output's bytes, and counts."""

    records: bytes
    chunks: bytes
    frames: bytes
    intermediates: tuple  # bytes of each of INTERMEDIATES, or () where not asked for
    n_records: int
    n_chunks: int
    text_start: int  # the block's bytes in the input's text
    text_end: int
    first_line: int
    residues: np.ndarray  # of each kept frame's protein
    bases: np.ndarray  # of each kept frame's nucleotides
    id_hashes: np.ndarray  # uint64, of each record id, for the check for duplicates


def prepare_sample(fasta, chunk_size, mode, models, n_shards, outputs, workers=1):
    """Cut, translate and shard every record of `fasta` in one pass.

    `outputs` names the paths: .records (one row per input record), .chunks (one row per chunk,
    with its 1-based inclusive span and kept frames, or why none), .frames and .manifest (the
    frame table cut into `n_shards` shards of equal work for `models`: io.shards.frame_table),
    .parts (where each block's rows lie), and, where it has them, the original's intermediate
    files (INTERMEDIATES: chunks as the original wrote them, `{id}_chunk_{k}`, case kept, 60
    letters a line; the kept frames' nucleotides and proteins). `workers` processes do the
    work; the output does not depend on their number."""
    keep = all(hasattr(outputs, name) for name in INTERMEDIATES)
    work = functools.partial(_prepare_block, str(fasta), chunk_size, mode, keep)
    totals, hashes = Counter(), []
    with ExitStack() as files:
        records, chunks, parts = (
            files.enter_context(atomic_open(path, "wb"))
            for path in (outputs.input_records, outputs.chunk_frames, outputs.parts)
        )
        frames = files.enter_context(
            frame_table(outputs.frames, outputs.manifest, n_shards, models)
        )
        kept = [
            files.enter_context(atomic_open(getattr(outputs, name), "wb"))
            for name in (INTERMEDIATES if keep else ())
        ]
        for out, columns in ((records, INPUT_RECORD_COLUMNS), (chunks, CHUNK_FRAME_COLUMNS)):
            out.write(("\t".join(columns) + "\n").encode())
        parts_table = tsv_writer(text := io.StringIO())
        parts_table.writerow(PART_COLUMNS)
        for part, prepared in enumerate(ordered_map(work, read_blocks(fasta), workers)):
            parts_table.writerow(
                (
                    part,
                    prepared.n_records,
                    prepared.n_chunks,
                    len(prepared.residues),
                    totals["frames"],
                    records.tell(),
                    records.tell() + len(prepared.records),
                    chunks.tell(),
                    chunks.tell() + len(prepared.chunks),
                    prepared.text_start,
                    prepared.text_end,
                    prepared.first_line,
                )
            )
            records.write(prepared.records)
            chunks.write(prepared.chunks)
            frames.add(prepared.frames, prepared.residues, prepared.bases)
            for out, data in zip(kept, prepared.intermediates, strict=True):
                out.write(data)
            hashes.append(prepared.id_hashes)
            totals.update(
                records=prepared.n_records, chunks=prepared.n_chunks, frames=len(prepared.residues)
            )
        _check_unique_ids(fasta, hashes, records)
        parts.write(text.getvalue().encode())
    if totals["records"] == 0:
        log.warning("%s holds no records: every output of this sample will be empty", fasta)
    log.info(
        "%s: %d records cut into %d chunks of %d bp (%s), %d frames kept (%d workers)",
        fasta,
        totals["records"],
        totals["chunks"],
        chunk_size,
        mode,
        totals["frames"],
        workers,
    )


def _prepare_block(fasta, chunk_size, mode, keep, block):
    """The outputs' bytes for one block of records (a worker's task)."""
    records, chunks, frames = io.StringIO(), io.StringIO(), io.StringIO()
    chunk_fa, nucleotide_fa, protein_faa = io.StringIO(), io.StringIO(), io.StringIO()
    records_table, chunks_table = tsv_writer(records), tsv_writer(chunks)
    residues, bases, ids = [], [], []
    n_records = n_chunks = 0
    for record in block_records(block, fasta):
        cuts = chunk_spans(len(record.sequence), chunk_size, mode)
        records_table.writerow(
            (record.id, len(record.sequence), len(cuts), "" if cuts else REASON_EMPTY)
        )
        for k, (start, end) in enumerate(cuts, start=1):
            chunk_id = f"{record.id}_chunk_{k}"
            chunk = record.sequence[start:end].upper()
            kept = kept_frames(chunk)
            for frame in kept:
                frame_id = chunk_id + frame.name
                frames.write(frame_row(frame_id, frame.nucleotide, frame.protein))
                residues.append(len(frame.protein))
                bases.append(len(frame.nucleotide))
                if keep:
                    write_unwrapped(nucleotide_fa, frame_id, frame.nucleotide)
                    write_unwrapped(protein_faa, frame_id, frame.protein)
            chunks_table.writerow(
                (
                    chunk_id,
                    record.id,
                    start + 1,
                    end,
                    len(chunk),
                    ",".join(frame.name for frame in kept),
                    "" if kept else no_frame_reason(chunk),
                )
            )
            if keep:
                write_wrapped(chunk_fa, chunk_id, record.sequence[start:end])
        ids.append(record.id)
        n_records += 1
        n_chunks += len(cuts)
    return _Prepared(
        records.getvalue().encode(),
        chunks.getvalue().encode(),
        frames.getvalue().encode(),
        tuple(out.getvalue().encode() for out in (chunk_fa, nucleotide_fa, protein_faa))
        if keep
        else (),
        n_records,
        n_chunks,
        block.start,
        block.end,
        block.first_line,
        np.array(residues, dtype=np.int32),
        np.array(bases, dtype=np.int32),
        _id_hashes(ids),
    )


def _id_hashes(ids):
    """64-bit hashes of record ids, the same in every process (Python's own hash of a string
    differs between processes)."""
    digests = b"".join(hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, dtype=np.uint64)


def _check_unique_ids(fasta, hashes, records):
    """InputError naming the ids that occur more than once, as fasta.read_records does. The
    hashes of all ids (8 bytes a record) find the candidates; the records table written so far
    (`records`, open for writing) gives their ids."""
    hashes = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, dtype=np.uint64)
    repeated = hashes[1:][hashes[1:] == hashes[:-1]]
    if not repeated.size:
        return
    records.flush()
    counts, repeated = Counter(), set(repeated.tolist())
    for row in read_tsv(records.name):
        if int(_id_hashes([row.record_id])[0]) in repeated:
            counts[row.record_id] += 1
    duplicates = {rid: n for rid, n in counts.items() if n > 1}
    if duplicates:  # else distinct ids whose hashes collide
        raise duplicate_ids_error(fasta, duplicates)
