"""The frames the original trained on (SPEC §7): those of chunks free of ambiguity codes whose
protein lies within an annotated CDS of the chunk's own GenBank record."""

from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
from Bio import SeqIO

from ..io.atomic import atomic_open
from ..io.compressed import format_of, open_text
from ..io.fasta import read_records, write_unwrapped
from ..io.shards import frame_row, frame_table
from ..io.tables import tsv_writer
from ..sequences.chunking import chunk_spans
from ..sequences.frames import kept_frames

# The ambiguity codes whose presence makes the original skip a chunk whole. Other letters (U,
# X, gaps) do not: their codons are dropped at translation as at prediction.
AMBIGUOUS_BASES = frozenset("NRYMKSWHBVD")
CHUNK_MARK = "_chunk_"


class TrainingFrame(NamedTuple):
    id: str  # {chunk_id}F1..F3 or R1..R3, as at prediction
    nucleotide: str  # the 3P+1 bases the original stored with the frame (SPEC §2)
    protein: str


def cds_translations(genbank_path):
    """{record id: [the `translation` of each of its CDS features]} of a GenBank file, plain
    or compressed. Record ids are the VERSION (accession.version), as in the matching FASTA.

    A CDS without a translation (a pseudogene) contributes nothing. A record id that occurs
    twice keeps the later record's list, as the original's dictionary did."""
    translations = {}
    with open_text(genbank_path, format_of(genbank_path)) as handle:
        for record in SeqIO.parse(handle, "genbank"):
            translations[record.id] = [
                feature.qualifiers["translation"][0]
                for feature in record.features
                if feature.type == "CDS" and "translation" in feature.qualifiers
            ]
    return translations


def training_frames(chunks, translations):
    """Yield the TrainingFrame of each kept frame of `chunks`, (chunk id, sequence) pairs.

    A chunk holding any AMBIGUOUS_BASES keeps no frame. Otherwise a frame is kept when it is
    stop-free (as at prediction) and its protein is a substring of some CDS translation of the
    record the chunk was cut from: the chunk id up to its first `_chunk_`. With `translations`
    None (no annotation) every stop-free frame is kept. Chunks of a record
    are expected together, as chunking writes them; any order is correct, only slower.
    """
    record_id, proteome = None, ""
    for chunk_id, sequence in chunks:
        chunk = sequence.upper()
        if not AMBIGUOUS_BASES.isdisjoint(chunk):
            continue
        if translations is None:
            for frame in kept_frames(chunk):
                yield TrainingFrame(chunk_id + frame.name, frame.nucleotide, frame.protein)
            continue
        source = chunk_id.partition(CHUNK_MARK)[0]
        if source != record_id:
            record_id = source
            # One search of the record's translations joined by a letter no protein holds
            # replaces one search per CDS, and is the same test.
            proteome = "\n".join(translations.get(record_id, ()))
        for frame in kept_frames(chunk):
            if frame.protein in proteome:
                yield TrainingFrame(chunk_id + frame.name, frame.nucleotide, frame.protein)


def select_training_set(fasta, genbank, label, chunk_size, models, n_shards, outputs):
    """The training frames of one labelled set: every record of `fasta` cut into chunks of
    `chunk_size` (overlap chunking, as the workflow cuts a sample), the frames kept by
    training_frames with the CDS translations of `genbank` (None: no annotation), written as a
    sample's frame table cut into `n_shards` shards of equal work for `models` (`outputs`
    .frames and .manifest: io.shards.frame_table) and a labels table (.labels: frame_id, label:
    `label` for every frame, training.run.read_labels; length: the bases of the frame's chunk,
    training.run.read_lengths); where `outputs` has them, the frames as the original's FASTA files
    too (.nucleotide_fa, .protein_faa). Returns the number of frames."""
    translations = None if genbank is None else cds_translations(genbank)
    keep = hasattr(outputs, "nucleotide_fa") and hasattr(outputs, "protein_faa")
    n_frames = 0
    with (
        frame_table(outputs.frames, outputs.manifest, n_shards, models) as table,
        atomic_open(outputs.labels) as labels_out,
        atomic_open(outputs.nucleotide_fa) if keep else nullcontext() as nucleotide_out,
        atomic_open(outputs.protein_faa) if keep else nullcontext() as protein_out,
    ):
        labels = tsv_writer(labels_out)
        labels.writerow(("frame_id", "label", "length"))
        for record in read_records(fasta):
            spans = chunk_spans(len(record.sequence), chunk_size)
            chunks = [
                (f"{record.id}{CHUNK_MARK}{k}", record.sequence[start:end])
                for k, (start, end) in enumerate(spans, start=1)
            ]
            # overlap chunking cuts a record into chunks of one length, the record's where shorter
            length = min(len(record.sequence), chunk_size)
            frames = list(training_frames(chunks, translations))
            table.add(
                "".join(frame_row(*frame) for frame in frames).encode(),
                np.array([len(frame.protein) for frame in frames]),
                np.array([len(frame.nucleotide) for frame in frames]),
            )
            for frame in frames:
                if keep:
                    write_unwrapped(nucleotide_out, frame.id, frame.nucleotide)
                    write_unwrapped(protein_out, frame.id, frame.protein)
                labels.writerow((frame.id, label, length))
            n_frames += len(frames)
        if n_frames == 0:
            raise ValueError(f"{fasta} gives no training frame: nothing to train or evaluate on")
    return n_frames
