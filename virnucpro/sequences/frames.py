"""Six-frame translation of a chunk and the choice of frames that are scored (SPEC §2)."""

import itertools
import re
from dataclasses import dataclass

from Bio.Data.CodonTable import standard_dna_table

FRAME_NAMES = ("F1", "F2", "F3", "R1", "R2", "R3")
CODON_TABLE = {
    **standard_dna_table.forward_table,
    **dict.fromkeys(standard_dna_table.stop_codons, "*"),
}
# The original complements A, C, G and T only and leaves every other letter as it is, which
# Biopython's reverse_complement does not (it maps IUPAC codes too); the nucleotide slices of
# reverse frames must match what the classifier was trained on.
_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_NOT_ACGT = str.maketrans("", "", "ACGT")  # deletes A, C, G and T: what is left is other letters
_codons = re.compile("...", re.S).findall
# Finds the first in-frame stop codon from a position, codon by codon: a frame with one is
# dropped before it is translated, which skips most of the work (most frames of DNA have one).
_stop_in_frame = re.compile("(?:...)*?(?:TAA|TAG|TGA)", re.S).match

REASON_TOO_SHORT = "shorter than one codon"
REASON_NO_CODON = "no codon of only A, C, G and T"
REASON_ALL_STOPS = "no stop-free frame"


@dataclass(frozen=True)
class Frame:
    name: str  # F1..F3, R1..R3
    protein: str
    nucleotide: str  # the 3P+1 bases stored with the frame, as the original stored them


def reverse_complement(sequence):
    return sequence.translate(_COMPLEMENT)[::-1]


def translate(sequence, offset):
    """Translate from `offset` while three bases remain; codons that are not ACGT triplets are
    dropped, not translated to X, as in the original."""
    return "".join(map(CODON_TABLE.get, _codons(sequence[offset:]), itertools.repeat("")))


def kept_frames(chunk):
    """The frames of an uppercase chunk whose protein is non-empty and has no stop codon."""
    kept = []
    for names, strand in ((FRAME_NAMES[:3], chunk), (FRAME_NAMES[3:], reverse_complement(chunk))):
        for offset, name in enumerate(names):
            protein = "" if _stop_in_frame(strand, offset) else translate(strand, offset)
            if protein:
                nucleotide = strand[offset : offset + stored_bases(len(protein))]
                kept.append(Frame(name, protein, nucleotide))
    return kept


def stored_bases(residues):
    """The bases stored with a frame of `residues` residues: 3P+1, fewer at the strand's end."""
    return 3 * residues + 1


def kept_frame_sizes(chunk):
    """(residues, bases) of each frame kept_frames keeps of an uppercase chunk, without
    translating one of only A, C, G and T (its every codon is one residue): for estimates."""
    if chunk.translate(_NOT_ACGT):
        return [(len(frame.protein), len(frame.nucleotide)) for frame in kept_frames(chunk)]
    sizes = []
    for strand in (chunk, reverse_complement(chunk)):
        for offset in range(3):
            residues = (len(strand) - offset) // 3
            if residues > 0 and not _stop_in_frame(strand, offset):
                sizes.append((residues, min(stored_bases(residues), len(strand) - offset)))
    return sizes


def no_frame_reason(chunk):
    """Why an uppercase chunk keeps no frame (only meaningful when kept_frames is empty)."""
    if len(chunk) < 3:
        return REASON_TOO_SHORT
    if not any(translate(chunk, offset) for offset in range(3)):
        return REASON_NO_CODON
    return REASON_ALL_STOPS
