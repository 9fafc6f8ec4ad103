"""The frames the original trained on (SPEC §7), checked against an independent
re-implementation of its selection."""

import gzip
import random

from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqFeature import FeatureLocation, SeqFeature
from Bio.SeqRecord import SeqRecord

from virnucpro.training_frames import TrainingFrame, cds_translations, training_frames

from reference import original, original_training

# Chunks of two annotated records and one that is not annotated. Frame proteins (SPEC §2):
# ATGGCTAAAGGCTTTCCGATCGAAGCT  F1 MAKGFPIEA, F2 WLKAFRSK, R1 SFDRKAFSH, R2 ASIGKPLA
# ATGAAACCCGGGTTTGCAGCTCCATGG  F1 MKPGFAAPW (and four more)
# GCTGCAGCCAAAATGTGGCCTTTACGT  F1 AAAKMWPLR, F2 LQPKCGLY, F3 CSQNVAFT, R2 RKGHILAA, R3 VKATFWLQ
CHUNKS = [
    ("NC_000001.1_chunk_1", "atggctaaaggctttccgatcgaagct"),
    ("NC_000001.1_chunk_2", "ATGAAACCCGGGTTTGCAGCTCCATGGN"),
    ("NC_000002.1_chunk_1", "GCTGCAGCCAAAATGTGGCCTTTACGT"),
    ("NC_000003.1_chunk_1", "ATGGCTAAAGGCTTTCCGATCGAAGCT"),
]
TRANSLATIONS = {
    # chunk_1's F1 inside a CDS; chunk_2's F1 too, but chunk_2 holds an N; NC_000002's F1
    "NC_000001.1": ["MSMAKGFPIEAKL", "MKPGFAAPWG", "AAAKMWPLR"],
    # NC_000001.1_chunk_1's R1 in another record's CDS; this record's own R2
    "NC_000002.1": ["MSFDRKAFSHL", "MRKGHILAAK"],
}


def _write_genbank(path, opener=open):
    """A GenBank file of TRANSLATIONS' records, each CDS on a stretch of its sequence, plus a
    CDS without a translation and a gene feature, which add no protein."""
    records = []
    for record_id, proteins in TRANSLATIONS.items():
        record = SeqRecord(
            Seq("ACGT" * 30),
            id=record_id,
            name=record_id.split(".")[0],
            annotations={"molecule_type": "DNA"},
        )
        for number, protein in enumerate(proteins):
            location = FeatureLocation(3 * number, 3 * number + 30)
            record.features.append(
                SeqFeature(location, type="CDS", qualifiers={"translation": [protein]})
            )
        record.features.append(SeqFeature(FeatureLocation(0, 9), type="CDS"))
        record.features.append(
            SeqFeature(FeatureLocation(0, 9), type="gene", qualifiers={"translation": ["MAK"]})
        )
        records.append(record)
    with opener(path, "wt") as handle:
        SeqIO.write(records, handle, "genbank")
    return path


def test_cds_translations_read_plain_and_compressed_genbank(tmp_path):
    plain = _write_genbank(tmp_path / "release.gbff")
    # gzip-compressed under a plain name: the format is told by the content
    compressed = _write_genbank(tmp_path / "release_too.gbff", gzip.open)
    assert cds_translations(plain) == cds_translations(compressed) == TRANSLATIONS


def test_training_frames_follow_the_original_rules():
    frames = list(training_frames(CHUNKS, TRANSLATIONS))
    assert frames == [
        # upper-cased; the other stop-free frames are in no CDS of NC_000001.1 (R1 is in one
        # of NC_000002.1's), and chunk_2 is skipped whole for its N
        TrainingFrame("NC_000001.1_chunk_1F1", "ATGGCTAAAGGCTTTCCGATCGAAGCT", "MAKGFPIEA"),
        # its F1 is in a CDS of NC_000001.1, which does not count
        TrainingFrame("NC_000002.1_chunk_1R2", "CGTAAAGGCCACATTTTGGCTGCAG", "RKGHILAA"),
    ]
    assert frames == original_training.training_frames(CHUNKS, TRANSLATIONS)


def test_training_frames_match_the_original_on_random_chunks():
    """Random records, a fifth of their chunks with ambiguity codes, annotated with CDS
    translations that hold some of their chunks' stop-free frames, some of them in the next
    record's CDS instead."""
    rng = random.Random(5)
    chunks, translations = [], {}
    for number in range(60):
        record_id = f"rec{number}.1"
        for k in range(1, 4):
            letters = "ACGT" * 40 + "acgt" * 5 + ("NRYKSWMBDHV" if rng.random() < 0.2 else "")
            sequence = "".join(rng.choice(letters) for _ in range(rng.randrange(60, 150)))
            chunks.append((f"{record_id}_chunk_{k}", sequence))
            for protein in _stop_free_proteins(sequence):
                annotated = rng.choice([number, number, number + 1, None])
                if annotated is not None:
                    translations.setdefault(f"rec{annotated}.1", []).append(f"M{protein}K")
    expected = original_training.training_frames(chunks, translations)
    assert len(expected) > 50
    assert list(training_frames(chunks, translations)) == expected


def _stop_free_proteins(sequence):
    """The non-empty stop-free frame proteins of a chunk, by the reference's translation."""
    forward, reverse = sequence.upper(), original.revcomp(sequence.upper())
    proteins = [
        original.frame_protein(strand, offset)
        for strand in (forward, reverse)
        for offset in range(3)
    ]
    return [protein for protein in proteins if protein and "*" not in protein]
