"""Nucleotide FASTA or FASTQ input (plain, or gzip, bzip2, xz or zstd compressed; FASTQ's
reads in fastq.py) checked record by record, and FASTA output in the exact layouts the original
tool wrote. The format is told by the content: the first byte of text that is not blank is a
FASTA record's '>' or a FASTQ record's '@'."""

import codecs
import io
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser
from xopen import xopen

from ..errors import InputError
from . import fastq
from .compressed import NAMES, format_of

# IUPAC nucleotide codes. Codons holding anything but A/C/G/T are dropped at translation
# (SPEC §2), so ambiguity codes are accepted as the original accepted them.
IUPAC_NUCLEOTIDES = frozenset("ACGTRYSWKMBDHVN")
# Letters of amino acids (and the rarer codes) that no nucleotide alphabet uses.
PROTEIN_ONLY = frozenset("EFILPQJOZ")
FORMATS_READ = "plain, gzip, bzip2, xz or zstd-compressed"
_SHOWN = 10  # offending records named in one error message
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
BLOCK_BYTES = 1 << 21  # of text per Block: a worker's task of 13,000 reads of 150 bp (FASTQ: 6,600)


@dataclass(frozen=True)
class Record:
    id: str
    sequence: str  # as in the file (case kept), whitespace and line breaks removed


def read_records(path):
    """Yield the records of a nucleotide FASTA or FASTQ file, raising InputError on anything
    that is not.

    Record ids are the title up to the first whitespace, as Biopython's SeqIO gives them and as
    the original tool used them. Duplicate ids are collected and reported once at the end.
    """
    path = Path(path)
    counts = Counter()
    for block in read_blocks(path):
        for record in block_records(block, path):
            counts[record.id] += 1
            yield record
    duplicates = {rid: n for rid, n in counts.items() if n > 1}
    if duplicates:
        raise duplicate_ids_error(path, duplicates)


def duplicate_ids_error(path, duplicates):
    """The InputError of the ids that occur more than once: {id: times}, in order of their
    first occurrence."""
    shown = ", ".join(f"{rid} (x{n})" for rid, n in itertools.islice(duplicates.items(), _SHOWN))
    more = f" and {len(duplicates) - _SHOWN} more" if len(duplicates) > _SHOWN else ""
    return InputError(
        f"{path}: {len(duplicates)} record id(s) occur more than once: {shown}{more}. "
        "Ids (the header up to the first whitespace) must be unique because every output row is "
        "keyed by them; rename the records, e.g. `seqkit rename`, or for FASTA "
        "`awk '/^>/{print \">r\" ++i; next} 1'`."
    )


@dataclass(frozen=True)
class Block:
    """Whole records of a FASTA or FASTQ file, as bytes, for a worker process to parse
    (block_records): where they start in the file's (decompressed) bytes, the number of their
    first record and first line in the file, and whether the file is FASTQ."""

    data: bytes
    start: int
    first_record: int
    first_line: int
    fastq: bool

    @property
    def end(self):
        return self.start + len(self.data)


def read_blocks(path):
    """Yield the file as Blocks of about BLOCK_BYTES, so that every record lies in one block (a
    record longer than that makes a block of its own): FASTA cut before a record's '>', FASTQ
    after a record's fourth line. Only bytes are looked at here: the reading process stays fast
    while workers parse and check."""
    path, size = Path(path), BLOCK_BYTES
    fmt = _format(path)
    pending, searched, start, record, line = bytearray(), 0, 0, 1, 1
    mark = None  # the first byte of text that is not blank, once read
    with _open_bytes(path, fmt) as handle:
        while data := _read(handle, size, path, fmt):
            pending += data
            mark = mark or _first_mark(pending)
            other = start == 0 and mark not in (None, b">", b"@")  # its worker says what it is
            if len(pending) < size and not other:
                continue
            if other:
                cut = len(pending)
            elif mark == b"@":
                cut, records = fastq.records_end(pending, start == 0)
            else:
                cut = _last_record_start(pending, max(searched - 1, 0))
            if cut <= 0:
                searched = len(pending)
                continue  # a record longer than `size`: read on
            block = Block(bytes(pending[:cut]), start, record, line, mark == b"@")
            del pending[:cut]
            searched = len(pending)  # what is left is the start of one record
            yield block
            start, line = block.end, line + _line_breaks(block.data)
            record += records if block.fastq else _fasta_starts(block.data)
    if pending:
        yield Block(bytes(pending), start, record, line, mark == b"@")


def block_records(block, path):
    """Yield the checked Records of a Block, as read_records does (InputError naming the record
    or line), without the check for duplicate ids, which needs every block."""
    try:
        # as compressed.open_text reads: a byte-order mark at the file's start dropped
        text = block.data.decode("utf-8-sig" if block.start == 0 else "utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, block.first_line, error) from error
    if block.fastq:
        for title, sequence, number, line in fastq.parse(text, path, block):
            yield _record(title, sequence, number, path, line)
        return
    pairs = _fasta_pairs(io.StringIO(text, newline=None), path)  # any line ending read as '\n'
    for number, (title, sequence) in enumerate(pairs, start=block.first_record):
        yield _record(title, sequence, number, path)


def is_fastq(data):
    """Whether text (bytes, from the file's start or a block's) is FASTQ: its first byte that
    is not blank is '@'."""
    return _first_mark(data) == b"@"


def _format(path):
    """format_of, or InputError naming the path where the file cannot be read."""
    try:
        return format_of(path)
    except OSError as error:
        raise InputError(
            f"{path}: cannot be read ({error.strerror}). Check the path; a relative path is "
            "taken from the directory the workflow runs in."
        ) from error


def _open_bytes(path, fmt):
    # threads=0 decompresses in this process, as open_text does
    return open(path, "rb") if fmt is None else xopen(path, "rb", format=fmt, threads=0)


def _read(handle, size, path, fmt):
    try:
        return handle.read(size)
    except Exception as error:
        if fmt is None:
            raise
        raise _damaged(path, fmt, error) from error


def _last_record_start(data, searched):
    """The offset of the last '>' that starts a line in data[searched:], or -1."""
    return max(data.rfind(b"\n>", searched), data.rfind(b"\r>", searched)) + 1 or -1


def _first_mark(data):
    """The first byte of text that is not blank (whitespace, a byte-order mark), or None."""
    if codecs.BOM_UTF8.startswith(data):
        return None  # no more than (part of) a byte-order mark yet
    return data.removeprefix(codecs.BOM_UTF8).lstrip()[:1] or None


def _line_breaks(data):
    """The lines a block's bytes end (any of the three line endings ends a line, as universal
    newlines read them; a block never ends between \r and \n)."""
    breaks = data.count(b"\n")
    if b"\r" in data:  # a file of Windows or old Mac line endings: the one pass more it needs
        breaks += data.count(b"\r") - data.count(b"\r\n")
    return breaks


def _fasta_starts(data):
    """The FASTA records a block's bytes start."""
    starts = data.count(b"\n>") + data.removeprefix(codecs.BOM_UTF8).startswith(b">")
    if b"\r" in data:
        starts += data.count(b"\r>")
    return starts


def _record(title, sequence, number, path, line=None):
    """The checked Record of record `number`; `line`, that of a FASTQ record's header."""
    record = Record(title.split(None, 1)[0] if title.strip() else "", sequence)
    _check_record(record, number, path, line)
    return record


def _not_utf8(path, first_line, error):
    """The InputError of a UnicodeDecodeError in text whose first line is `first_line`."""
    line = first_line + len(_LINE_BREAK.findall(error.object[: error.start]))
    encoding = "utf-16" if _utf16(error.object) else "latin1"
    return InputError(
        f"{path}: line {line} holds byte {error.object[error.start]:#04x}, which is not "
        "UTF-8 text: this is a binary file, or text in another encoding, not FASTA or FASTQ. "
        f"Give nucleotide FASTA or FASTQ ({FORMATS_READ}); convert text in another encoding "
        f"first, e.g. `iconv -f {encoding} -t utf-8`."
    )


def _utf16(data):
    """Whether text looks like UTF-16 (as Windows tools may save it): a UTF-16 byte-order mark,
    or a zero byte beside every ASCII letter of its start."""
    start = bytes(data[:512])
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return len(start) >= 2 and start.count(0) * 2 >= len(start) - 1


def _damaged(path, fmt, error):
    """The InputError of compressed data that does not decompress: each decompressor (ISA-L
    or zlib-ng for gzip, bz2, lzma, zstd) raises its own error classes on damaged data, none
    shared; any of them means the same here."""
    name = NAMES[fmt]
    what = "ends early" if isinstance(error, EOFError) else f"is damaged ({error})"
    return InputError(
        f"{path}: its {name} data {what}: the file is truncated or corrupt, e.g. by an "
        f"interrupted download or copy. Copy it again and check it with `{name} -t {path}`."
    )


def _fasta_pairs(lines, path):
    """Biopython's parser, after checking that the text before the first '>' is blank.

    SimpleFastaParser skips leading text silently; a file that is neither FASTA nor FASTQ (whose
    blocks fastq.parse reads) must be an error.
    """
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith(">"):
            raise InputError(
                f"{path}: this is not a FASTA or FASTQ file: the first non-blank line is "
                f"{line.strip()[:60]!r}, but a FASTA record starts with '>' and a FASTQ record "
                f"with '@'; give nucleotide FASTA or FASTQ ({FORMATS_READ})."
            )
        yield from SimpleFastaParser(itertools.chain([line], lines))
        return


def _check_record(record, number, path, line):
    fastq = line is not None
    if not record.id:
        at, mark = (f" (line {line})", "@") if fastq else ("", ">")
        raise InputError(
            f"{path}: record {number}{at} has an empty header ({mark!r} followed by nothing); "
            "give every record an id."
        )
    unknown = set(record.sequence.upper()) - IUPAC_NUCLEOTIDES
    if not unknown:
        return
    first = next(i for i, letter in enumerate(record.sequence.upper(), 1) if letter in unknown)
    at = f"number {number}, line {line}" if fastq else f"number {number}"
    raise InputError(
        f"{path}: record {record.id!r} ({at}) contains {''.join(sorted(unknown))!r} (first at "
        f"position {first}), which is not a nucleotide code; {_what_it_is(unknown, fastq)}."
    )


def _what_it_is(unknown, fastq):
    """What a record holding these non-nucleotide characters most likely is, and the fix."""
    if "\x00" in unknown:
        return (
            "zero bytes between the letters are UTF-16 text, as Windows tools may save it: "
            "convert it first, e.g. `iconv -f utf-16 -t utf-8`"
        )
    lines = "2~4" if fastq else "/^>/!"  # the sed address of the sequence lines
    if not fastq and unknown & set("@+"):
        return (
            "this looks like FASTQ records (their '@' header, '+' and quality lines) after FASTA "
            "ones: give a sample's records in one format, e.g. convert the FASTQ ones with "
            "`seqkit fq2fa` before joining them to the FASTA"
        )
    if unknown & PROTEIN_ONLY:
        return "this looks like a protein sequence; virnucpro needs the nucleotide sequences"
    if "U" in unknown:
        return f"this looks like RNA: write T for U, e.g. `sed '{lines}y/Uu/Tt/'`"
    if "X" in unknown:
        return f"masking tools write X for an unknown base: write N, e.g. `sed '{lines}y/Xx/Nn/'`"
    if "*" in unknown:
        return (
            "the rest of the record is nucleotides, so '*' is no stop codon here but a mark some "
            "tools write at the end of a sequence or for an unknown base: remove it, or write N "
            f"for it, e.g. `sed '{lines}s/[*]/N/g'`"
        )
    if unknown & set("-."):
        return "these are alignment gaps: remove them, e.g. `seqkit seq -g`"
    if unknown & set("0123456789"):
        return (
            "digits are not bases: this looks like a quality file (.qual), or GenBank or EMBL "
            "sequence lines with their position numbers; give the records as nucleotide FASTA, "
            "e.g. by Biopython's `SeqIO.convert(path, 'genbank', out, 'fasta')`"
        )
    return "use A, C, G, T or IUPAC nucleotide codes (RYSWKMBDHVN)"


def write_wrapped(handle, record_id, sequence, width=60):
    """One record as Biopython's SeqIO.write(..., 'fasta') writes it: lines of 60 letters."""
    handle.write(f">{record_id}\n")
    for start in range(0, len(sequence), width):
        handle.write(sequence[start : start + width])
        handle.write("\n")


def write_unwrapped(handle, record_id, sequence):
    """One record on two lines, as the original wrote its frame FASTA files."""
    handle.write(f">{record_id}\n{sequence}\n")
