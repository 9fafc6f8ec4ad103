"""The frames the original trained on (SPEC §7): those of chunks free of ambiguity codes whose
protein lies within an annotated CDS of the chunk's own GenBank record."""

from typing import NamedTuple

from Bio import SeqIO

from .compressed import format_of, open_text
from .frames import kept_frames

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
    record the chunk was cut from: the chunk id up to its first `_chunk_`. Chunks of a record
    are expected together, as chunking writes them; any order is correct, only slower.
    """
    record_id, proteome = None, ""
    for chunk_id, sequence in chunks:
        chunk = sequence.upper()
        if not AMBIGUOUS_BASES.isdisjoint(chunk):
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
