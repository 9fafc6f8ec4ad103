"""FASTQ reads: records of four lines, an '@' header, the sequence, a '+' line (bare, or
repeating the header) and the quality, one character a base, which is only checked to be as
long as the sequence.

Hand-written, as the FASTA path is (fasta.read_blocks), so that the reading process cuts a file
into blocks of whole records by its bytes alone while workers parse them. A quality line may
start with '@', so no byte tells where a record starts: counting lines does, which takes a
record to be exactly four lines, as sequencers and read tools write them. Multi-line FASTQ
(sequence and quality wrapped, rare) stops with an error saying how to rewrite it; Biopython's
FastqGeneralIterator, which reads it, finds each record's end a line at a time, where splitting
a block into lines and taking every fourth parses as fast per base as the FASTA path. Blank
lines may come before the first record and after the last."""

import codecs

import numpy as np

from ..errors import InputError

_BLANK = " \t\n\r\x0b\x0c"  # what bytes.strip() takes away: a line of only these is blank
_FOUR_LINES = "four lines each: an '@' header, the sequence, a '+' line and the quality"
_REWRITE = "`seqkit seq in.fq > out.fq` writes four lines a record"
_LINE_NAMES = ("header", "sequence line", "'+' line", "quality line")


def records_end(data, at_file_start):
    """(offset, records): where the last whole record of FASTQ bytes `data` ends (its fourth
    line ended), and how many records come before it; (0, 0) for none. `data` starts at a
    record, or at the file's start, whose byte-order mark and blank lines come before its first
    record. A group of four lines that starts with a blank line is not counted: blank lines
    after the last record of a block would pass for the end of the file, so they go with what
    follows them, whose parser tells whether they end it."""
    first = _first_line_start(data) if at_file_start else 0
    ends = _line_ends(data, first)
    records = len(ends) // 4
    while records:
        start = int(ends[4 * records - 5]) if records > 1 else first
        if data[start : int(ends[4 * records - 4])].strip():
            return int(ends[4 * records - 1]), records
        records -= 1
    return 0, 0


def parse(text, path, block):
    """Yield (title, sequence, number, line) of each record of a block's text (its line endings
    any of '\\n', '\\r\\n', '\\r'): the header after its '@', the sequence line, the record's
    number and the line of its header in the file. InputError names the record or line of a
    record that is not four lines of FASTQ, and a record cut short by the file's end."""
    lines = _lines(text)
    at = _first_record(lines) if block.start == 0 else 0
    whole = at + (len(lines) - at) // 4 * 4
    groups = zip(*(lines[at + k : whole : 4] for k in range(4)), strict=True)
    for n, (header, sequence, plus, quality) in enumerate(groups):
        if not (
            header.startswith("@")
            and (plus == "+" or plus == "+" + header[1:])
            and len(quality) == len(sequence)
        ):
            break
        yield header[1:], sequence, block.first_record + n, block.first_line + at + 4 * n
    else:
        n = (whole - at) // 4
    bad = at + 4 * n
    if bad < len(lines) and any(line.strip(_BLANK) for line in lines[bad:]):
        # the file ends inside the record's last line: its text ends in no line break
        cut_short = bad + 4 >= len(lines) and not text.endswith(("\n", "\r"))
        number, line = block.first_record + n, block.first_line + bad
        raise _malformed(path, lines[bad : bad + 4], number, line, cut_short)


def sequences(text):
    """The sequence lines of FASTQ text, unchecked, the last perhaps cut short: for an estimate
    of the work a file holds from its start."""
    lines = _lines(text)
    return lines[_first_record(lines) + 1 :: 4]


def _lines(text):
    """The lines of text, whatever its line endings, without the empty string after a last
    line break."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()
    return lines


def _first_record(lines):
    """The index of the first line that is not blank (the first record's header)."""
    return next((i for i, line in enumerate(lines) if line.strip(_BLANK)), len(lines))


def _first_line_start(data):
    """The offset of the line that holds the first byte of `data` that is not blank, after a
    byte-order mark."""
    text = data.removeprefix(codecs.BOM_UTF8)
    at = len(data) - len(text.lstrip())
    return max(data.rfind(b"\n", 0, at), data.rfind(b"\r", 0, at)) + 1


def _line_ends(data, first):
    """The offsets just past each line break in data[first:]: '\\n', '\\r\\n', and a '\\r'
    before any other byte (a '\\r' at the end may be half of a '\\r\\n' not yet read)."""
    codes = np.frombuffer(data, dtype=np.uint8)[first:]
    ends = np.flatnonzero(codes == ord("\n"))
    if b"\r" in data:  # Windows or old Mac line endings: the one pass more they need
        returns = np.flatnonzero(codes[:-1] == ord("\r"))
        ends = np.union1d(ends, returns[codes[returns + 1] != ord("\n")])
    return ends + first + 1


def _malformed(path, lines, number, line, cut_short):
    """The InputError of the record of `lines` (up to four, from its header on) that is not
    four lines of FASTQ: record `number`, whose first line is line `line` of the file, the last
    of them `cut_short` where the file ends inside it."""
    header = lines[0]
    if not header.startswith("@"):
        if not header.strip(_BLANK):
            problem = "is blank"
            fix = "remove the blank lines between records"
        elif header.startswith(">"):
            problem = f"is a FASTA header, {header[:60]!r}, in a FASTQ file"
            fix = (
                "give a sample's records in one format, e.g. convert the FASTQ file with "
                "`seqkit fq2fa` before joining it to the FASTA"
            )
        else:
            problem = f"is {header[:60]!r}"
            fix = (
                "the record before it has more than four lines: multi-line FASTQ is not read "
                f"({_REWRITE}), or the file is damaged"
            )
        return InputError(
            f"{path}: line {line} {problem}, where record {number} should start with '@': "
            f"FASTQ records are {_FOUR_LINES}; {fix}."
        )
    record = f"record {number} ({header[:60]!r}, line {line})"
    if len(lines) > 2 and not lines[2].startswith("+"):
        return InputError(
            f"{path}: {record} has {lines[2][:60]!r} as its third line (line {line + 2}), where "
            f"its '+' line should be: FASTQ records are {_FOUR_LINES}. A sequence wrapped over "
            f"several lines (multi-line FASTQ) is not read: {_REWRITE}; else the record has lost "
            "its '+' line and the file is damaged."
        )
    if len(lines) > 2 and lines[2] != "+" and lines[2][1:] != header[1:]:
        return InputError(
            f"{path}: {record} has a '+' line (line {line + 2}) naming another record, "
            f"{lines[2][:60]!r}: a '+' line is bare or repeats its header. Where the headers "
            "were renamed, make the '+' lines bare, e.g. `sed '3~4s/.*/+/'`; else the file is "
            "damaged, e.g. the record has lost its '+' line and its quality starts with '+'."
        )
    if len(lines) == 4 and not (cut_short and len(lines[3]) < len(lines[1])):
        return InputError(
            f"{path}: {record} has a quality line (line {line + 3}) of {len(lines[3])} "
            f"characters for a sequence of {len(lines[1])}: FASTQ gives each base one quality "
            "character, so the file is damaged (a line cut short or lines run together); copy "
            "it again or make it again."
        )
    where = (
        f"in its {_LINE_NAMES[len(lines) - 1]} (line {line + len(lines) - 1})"
        if cut_short
        else f"after {len(lines)} of its four lines"
    )
    return InputError(
        f"{path}: the file ends inside {record}, {where}: the file is truncated, e.g. by an "
        "interrupted download or copy; copy it again."
    )
