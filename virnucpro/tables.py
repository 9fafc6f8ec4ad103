"""Tab-separated tables: one dialect for every table the workflow writes and reads."""

import csv
from collections import namedtuple


def tsv_writer(handle):
    return csv.writer(handle, delimiter="\t", lineterminator="\n")


def read_tsv(path):
    """Yield the rows of a table written with tsv_writer as named tuples, fields named by its
    header (several times faster than csv.DictReader, which the per-frame tables need)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, None)
        if header is not None:
            yield from map(namedtuple("Row", header)._make, rows)
