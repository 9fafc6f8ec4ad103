"""A sample's calls as one HTML page, for the Snakemake report: how a record's call follows from
the columns of records.tsv, the records ranked by the score the call rule reads (all of them in
a sample of up to MAX_ROWS, else the MAX_ROWS highest), the viral regions, and the summary,
under a box that filters the rows by any text (an id, a call). A sample may hold tens of
millions of records: the ranking reads two columns as arrays (table_columns.py), a block at a
time, and only the rows shown whole."""

import csv
import itertools
from pathlib import Path

import numpy as np

from ..calls.part_calls import RECORD_COLUMNS
from ..io.table_columns import column_blocks, rows_at
from .html_page import filter_box, heading, paragraph, preformatted, table, write_page
from .plots import RANDOM_WEIGHTS

MAX_ROWS = 2000  # of each table: a page of more is slow to show and to filter
# the columns a call follows from first, the rule's score after the call, then the rest
_LEAD = ("record_id", "call", "best_virus_score", "best_others_score")
_REST = tuple(name for name in RECORD_COLUMNS if name not in _LEAD)


def write_calls_page(
    sample, records_tsv, regions_tsv, summary_txt, rule, path, random_weights=False
):
    """Write the page of the aggregation's tables to `path`. `rule`: the calling.CallRule the
    calls were made by; `random_weights`: whether the embedding models' weights are random,
    which the page then says first."""
    records, ranked = _ranked_records(records_tsv, rule)
    region_header, regions, region_count = _first_rows(regions_tsv)
    score = f"score ({rule.score_name})"
    parts = [heading(f"{sample}: the calls of its records", level=1)]
    if random_weights:
        parts.append(paragraph(RANDOM_WEIGHTS, warning=True))
    parts += [
        paragraph(
            f"How a record is called, from its columns: {rule.describe()}; unscored where "
            "chunks_scored is 0 (its reason says why). The score column is the score the rule "
            "compares."
        ),
        filter_box("filter the rows: any text of them (an id, virus, others, ...)"),
        heading("Records"),
        paragraph(
            f"All {records:,} records, by score, highest first (unscored ones last)."
            if records <= MAX_ROWS
            else f"The {MAX_ROWS:,} of {records:,} records of the highest score, highest first "
            "(all are in records.tsv)."
        ),
        table(
            (*_LEAD[:2], score, *_LEAD[2:], *_REST),
            (
                (
                    *(row[name] for name in _LEAD[:2]),
                    _score_text(rule, row),
                    *(row[name] for name in _LEAD[2:] + _REST),
                )
                for row in ranked
            ),
        ),
        heading("Viral regions"),
        paragraph(
            f"All {region_count:,} regions, in input order."
            if region_count <= MAX_ROWS
            else f"The first {MAX_ROWS:,} of {region_count:,} regions, in input order (all are in "
            "regions.tsv)."
        ),
        table(region_header, regions),
        heading("Summary"),
        preformatted(Path(summary_txt).read_text()),
    ]
    write_page(path, f"{sample}: calls", parts)


def _ranked_records(records_tsv, rule):
    """The number of records, and the rows of the MAX_ROWS of them with the highest score of
    `rule` (unscored ones last), ties in table order."""
    count, keys, offsets = 0, np.empty(0), np.empty(0, dtype=np.int64)
    for rows in column_blocks(records_tsv, ("best_others_score", "best_virus_score")):
        score = rule.score(rows.floats("best_others_score"), rows.floats("best_virus_score"))
        keys = np.concatenate([keys, np.where(np.isnan(score), -np.inf, score)])
        offsets = np.concatenate([offsets, rows.offsets])
        best = np.lexsort((offsets, -keys))[:MAX_ROWS]  # offsets grow in table order
        keys, offsets = keys[best], offsets[best]
        count += len(rows)
    return count, rows_at(records_tsv, offsets)


def _score_text(rule, row):
    if row["call"] == "unscored":
        return "NA"
    return f"{rule.score(float(row['best_others_score']), float(row['best_virus_score'])):.4g}"


def _first_rows(tsv):
    """The header of a table, its first MAX_ROWS rows, and its number of rows."""
    with open(tsv, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows)
        first = list(itertools.islice(rows, MAX_ROWS))
        return header, first, len(first) + sum(1 for _ in rows)
