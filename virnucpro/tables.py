"""Tab-separated tables: one dialect for every table the workflow writes and reads."""

import csv


def tsv_writer(handle):
    return csv.writer(handle, delimiter="\t", lineterminator="\n")


def read_tsv(path):
    """Yield the rows of a table written with tsv_writer as dicts keyed by its header."""
    with open(path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter="\t")
