"""The original VirNucPro's chunking and six-frame selection, written from SPEC §1-§2 alone and
independently of the virnucpro package, to check the package's `legacy` mode against.

It follows the original's structure (divide the overlap by n, Biopython records and writer for
the chunk file, a codon dictionary lookup per codon) rather than the package's.
"""

from Bio import SeqIO

STANDARD_CODE = {
    "TTT": "F",
    "TTC": "F",
    "TTA": "L",
    "TTG": "L",
    "CTT": "L",
    "CTC": "L",
    "CTA": "L",
    "CTG": "L",
    "ATT": "I",
    "ATC": "I",
    "ATA": "I",
    "ATG": "M",
    "GTT": "V",
    "GTC": "V",
    "GTA": "V",
    "GTG": "V",
    "TCT": "S",
    "TCC": "S",
    "TCA": "S",
    "TCG": "S",
    "CCT": "P",
    "CCC": "P",
    "CCA": "P",
    "CCG": "P",
    "ACT": "T",
    "ACC": "T",
    "ACA": "T",
    "ACG": "T",
    "GCT": "A",
    "GCC": "A",
    "GCA": "A",
    "GCG": "A",
    "TAT": "Y",
    "TAC": "Y",
    "TAA": "*",
    "TAG": "*",
    "CAT": "H",
    "CAC": "H",
    "CAA": "Q",
    "CAG": "Q",
    "AAT": "N",
    "AAC": "N",
    "AAA": "K",
    "AAG": "K",
    "GAT": "D",
    "GAC": "D",
    "GAA": "E",
    "GAG": "E",
    "TGT": "C",
    "TGC": "C",
    "TGA": "*",
    "TGG": "W",
    "CGT": "R",
    "CGC": "R",
    "CGA": "R",
    "CGG": "R",
    "AGT": "S",
    "AGC": "S",
    "AGA": "R",
    "AGG": "R",
    "GGT": "G",
    "GGC": "G",
    "GGA": "G",
    "GGG": "G",
}


def legacy_chunks(records, chunk_size):
    """Biopython records cut as the original cuts them (SPEC §1, legacy)."""
    for record in records:
        length = len(record.seq)
        n = -(-length // chunk_size)
        spare = n * chunk_size - length
        low = int(spare / n)
        ups = spare - (n - 1) * low
        overlaps = [low + 1] * ups + [low] * max(0, n - 1 - ups)
        for k in range(1, n + 1):
            start = 0 if k == 1 else (k - 1) * chunk_size - sum(overlaps[: k - 1])
            chunk = record[start : min(start + chunk_size, length)]
            chunk.id = f"{record.id}_chunk_{k}"
            chunk.description = ""
            yield chunk


def write_chunk_file(input_fasta, output_fasta, chunk_size):
    with open(output_fasta, "w") as out:
        SeqIO.write(legacy_chunks(SeqIO.parse(input_fasta, "fasta"), chunk_size), out, "fasta")


def revcomp(text):
    pairs = {"A": "T", "C": "G", "G": "C", "T": "A"}
    return "".join(pairs.get(base, base) for base in reversed(text))


def frame_protein(text, offset):
    codons = [text[i : i + 3] for i in range(offset, len(text) - 2, 3)]
    return "".join(STANDARD_CODE.get(codon, "") for codon in codons)


def write_frame_files(chunk_fasta, nucleotide_out, protein_out):
    """The two frame FASTA files (SPEC §2): stop-free, non-empty frames with 3P+1 bases."""
    with open(nucleotide_out, "w") as dna, open(protein_out, "w") as aa:
        for record in SeqIO.parse(chunk_fasta, "fasta"):
            chunk = str(record.seq).upper()
            for number in range(1, 7):
                strand = chunk if number <= 3 else revcomp(chunk)
                offset = (number - 1) % 3
                protein = frame_protein(strand, offset)
                if "*" in protein or protein == "":
                    continue
                name = record.id + ("F" if number <= 3 else "R") + str(offset + 1)
                dna.write(f">{name}\n{strand[offset : offset + 1 + 3 * len(protein)]}\n")
                aa.write(f">{name}\n{protein}\n")
