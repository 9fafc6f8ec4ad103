"""The frames the original VirNucPro's training datasets kept (SPEC §7), written from the
SPEC text alone and independently of virnucpro.training_frames, to check the package against.
"""

from .original import frame_protein, revcomp

AMBIGUOUS_BASES = {"N", "R", "Y", "M", "K", "S", "W", "H", "B", "V", "D"}


def training_frames(chunks, refseq_proteins):
    """[(frame id, nucleotide, protein)] of (chunk id, sequence) pairs, as the original's
    training datasets selected them (SPEC §7): chunks with an ambiguity code skipped, frames
    kept when stop-free and within a CDS translation of their own record."""
    selected = []
    for seqid, text in chunks:
        sequence = text.upper()
        if any(base in sequence for base in AMBIGUOUS_BASES):
            continue
        proteins = refseq_proteins.get(seqid.split("_chunk_")[0], [])
        for number in range(1, 7):
            strand = sequence if number <= 3 else revcomp(sequence)
            offset = (number - 1) % 3
            protein = frame_protein(strand, offset)
            if protein == "" or "*" in protein:
                continue
            if not any(protein in reference for reference in proteins):
                continue
            name = seqid + ("F" if number <= 3 else "R") + str(offset + 1)
            selected.append((name, strand[offset : offset + 1 + 3 * len(protein)], protein))
    return selected
