from virnucpro.sequences.frames import (
    REASON_ALL_STOPS,
    REASON_NO_CODON,
    REASON_TOO_SHORT,
    kept_frames,
    no_frame_reason,
    reverse_complement,
    translate,
)


def test_codons_with_iupac_letters_are_dropped_not_translated():
    assert translate("ATGNNNAAARGT", 0) == "MK"
    assert translate("ATGAAAC", 1) == "*N"  # TGA AAC, the trailing base ignored


def test_reverse_complement_keeps_non_acgt_letters():
    assert reverse_complement("ACGTNRY") == "YRNACGT"


def test_frames_keep_the_original_3p_plus_1_slice():
    chunk = "ATGAAACCCGGGTTTNNNAAA"
    frames = {frame.name: frame for frame in kept_frames(chunk)}
    assert set(frames) == {"F1", "F3", "R1", "R2", "R3"}
    f1 = frames["F1"]
    assert f1.protein == "MKPGFK"  # NNN dropped: 6 residues from 7 codons
    assert f1.nucleotide == chunk[0 : 1 + 3 * 6]
    r2 = frames["R2"]
    assert r2.nucleotide == reverse_complement(chunk)[1 : 2 + 3 * len(r2.protein)]


def test_chunks_without_frames_get_a_reason():
    assert kept_frames("AC") == [] and no_frame_reason("AC") == REASON_TOO_SHORT
    assert kept_frames("NNNNNN") == [] and no_frame_reason("NNNNNN") == REASON_NO_CODON
    every_frame_stops = "CTAATTAATTAG"
    assert kept_frames(every_frame_stops) == []
    assert no_frame_reason(every_frame_stops) == REASON_ALL_STOPS
