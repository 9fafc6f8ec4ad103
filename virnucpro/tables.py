"""Tab-separated tables: one dialect for every table the workflow writes and reads.

No field is quoted: a field never holds a tab or a line break (ids are FASTA header words, the
rest numbers, calls and reasons), so a '"' in an id is written and read as the letter it is, as
a user's `cut` or `awk` reads it. A field that held a tab or a line break would be an error
(csv's "need to escape"), not a table that reads back otherwise."""

import csv
from collections import namedtuple

_DIALECT = {"delimiter": "\t", "lineterminator": "\n", "quoting": csv.QUOTE_NONE, "quotechar": None}


def tsv_writer(handle):
    return csv.writer(handle, **_DIALECT)


def tsv_reader(lines):
    """The rows (lists of fields) of lines of a table written with tsv_writer."""
    return csv.reader(lines, **_DIALECT)


def read_tsv(path):
    """Yield the rows of a table written with tsv_writer as named tuples, fields named by its
    header (several times faster than csv.DictReader, which the per-frame tables need)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = tsv_reader(handle)
        header = next(rows, None)
        if header is not None:
            yield from map(namedtuple("Row", header)._make, rows)
