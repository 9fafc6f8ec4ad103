"""Nucleotide FASTA input (plain or gzip) checked record by record, and FASTA output in the
exact layouts the original tool wrote."""

import gzip
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser

# IUPAC nucleotide codes. Codons holding anything but A/C/G/T are dropped at translation
# (SPEC §2), so ambiguity codes are accepted as the original accepted them.
IUPAC_NUCLEOTIDES = frozenset("ACGTRYSWKMBDHVN")
_GZIP_MAGIC = b"\x1f\x8b"
_SHOWN = 10  # offending records named in one error message


class InputError(ValueError):
    """Input the workflow cannot use; the message names the file, the record and the fix."""


@dataclass(frozen=True)
class Record:
    id: str
    sequence: str  # as in the file (case kept), whitespace and line breaks removed


def open_text(path):
    """Open a FASTA file for reading, gzip-compressed or not (told by its first bytes)."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline=None)
    return open(path, encoding="utf-8", errors="replace", newline=None)


def read_records(path):
    """Yield the records of a nucleotide FASTA file, raising InputError on anything that is not.

    Record ids are the title up to the first whitespace, as Biopython's SeqIO gives them and as
    the original tool used them. Duplicate ids are collected and reported once at the end.
    """
    path = Path(path)
    counts = Counter()
    with open_text(path) as handle:
        for number, (title, sequence) in enumerate(_fasta_pairs(handle, path), start=1):
            record = Record(title.split(None, 1)[0] if title.strip() else "", sequence)
            _check_record(record, number, path)
            counts[record.id] += 1
            yield record
    duplicates = [rid for rid, n in counts.items() if n > 1]
    if duplicates:
        shown = ", ".join(f"{rid} (x{counts[rid]})" for rid in duplicates[:_SHOWN])
        more = f" and {len(duplicates) - _SHOWN} more" if len(duplicates) > _SHOWN else ""
        raise InputError(
            f"{path}: {len(duplicates)} record id(s) occur more than once: {shown}{more}. "
            "Ids (the header up to the first space) must be unique because every output row is "
            "keyed by them; rename the records, e.g. `seqkit rename` or "
            "`awk '/^>/{print \">r\" ++i; next} 1'`."
        )


def _fasta_pairs(handle, path):
    """Biopython's parser, after checking that the text before the first '>' is blank.

    SimpleFastaParser skips leading text silently; a file that is not FASTA must be an error.
    """
    for line in handle:
        if not line.strip():
            continue
        if not line.startswith(">"):
            raise InputError(
                f"{path}: this is not a FASTA file: the first non-blank line is "
                f"{line.strip()[:60]!r}, but a FASTA record starts with '>'. "
                "Give a nucleotide FASTA file (plain or gzip-compressed)."
            )
        yield from SimpleFastaParser(itertools.chain([line], handle))
        return


def _check_record(record, number, path):
    if not record.id:
        raise InputError(
            f"{path}: record {number} has an empty header ('>' followed by nothing); "
            "give every record an id."
        )
    unknown = set(record.sequence.upper()) - IUPAC_NUCLEOTIDES
    if not unknown:
        return
    letters = "".join(sorted(unknown))
    if "U" in unknown:
        fix = "this looks like RNA: write T for U, e.g. `sed '/^>/!y/Uu/Tt/'`"
    elif unknown & set("EFILPQXZJO*"):
        fix = "this looks like a protein sequence; virnucpro needs the nucleotide sequences"
    elif unknown & set("-."):
        fix = "remove alignment gaps, e.g. `seqkit seq -g`"
    else:
        fix = "use A, C, G, T or IUPAC nucleotide codes (RYSWKMBDHVN)"
    raise InputError(
        f"{path}: record {record.id!r} (number {number}) contains {letters!r}, which is not a "
        f"nucleotide code; {fix}."
    )


def write_wrapped(handle, record_id, sequence, width=60):
    """One record as Biopython's SeqIO.write(..., 'fasta') writes it: lines of 60 letters."""
    handle.write(f">{record_id}\n")
    for start in range(0, len(sequence), width):
        handle.write(sequence[start : start + width])
        handle.write("\n")


def write_unwrapped(handle, record_id, sequence):
    """One record on two lines, as the original wrote its frame FASTA files."""
    handle.write(f">{record_id}\n{sequence}\n")


def read_unwrapped(handle):
    """Yield (id, sequence) from a file written by write_unwrapped."""
    for header, sequence in zip(handle, handle, strict=True):
        yield header[1:-1], sequence[:-1]
