"""Tab-separated tables: one dialect for every table the workflow writes and reads.

No field is quoted: a field never holds a tab or a line break (ids are FASTA header words, the
rest numbers, calls and reasons), so a '"' in an id is written and read as the letter it is, as
a user's `cut` or `awk` reads it. A field that held a tab or a line break would be an error
(csv's "need to escape"), not a table that reads back otherwise."""

import csv
import os
from collections import namedtuple

from .damage import DamagedFile

_DIALECT = {"delimiter": "\t", "lineterminator": "\n", "quoting": csv.QUOTE_NONE, "quotechar": None}


def tsv_writer(handle):
    return csv.writer(handle, **_DIALECT)


def tsv_reader(lines):
    """The rows (lists of fields) of lines of a table written with tsv_writer."""
    return csv.reader(lines, **_DIALECT)


def read_tsv(path):
    """Yield the rows of a table written with tsv_writer as named tuples, fields named by its
    header (several times faster than csv.DictReader, which the per-frame tables need).
    DamagedFile if its last line is cut short or a row does not hold its header's fields."""
    if not _ends_a_line(path):
        raise DamagedFile(path, "its last line is cut short (it ends without a line break)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = tsv_reader(handle)
        header = next(rows, None)
        if header is None:
            return
        try:
            yield from map(namedtuple("Row", header)._make, rows)
        except TypeError:  # _make's, of a row of other than the header's fields
            raise DamagedFile(
                path, f"line {rows.line_num} does not hold the {len(header)} fields of its header"
            ) from None


def _ends_a_line(path):
    """Whether a file is empty or ends with a line break."""
    with open(path, "rb") as raw:
        size = raw.seek(0, os.SEEK_END)
        raw.seek(max(size - 1, 0))
        return size == 0 or raw.read(1) == b"\n"
