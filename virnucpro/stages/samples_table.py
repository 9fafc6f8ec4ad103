"""One row per sample for the whole run (`results/samples.tsv`): what each sample holds and the
settings its calls were made with, so that samples of one run compare at a glance; and the same
with each sample's summary as one HTML page, which the Snakemake report shows inline (it offers
tables and text files only as downloads). A run in which some samples failed lists them too,
with why, beside the ones that finished."""

from collections import Counter
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_open
from ..io.table_columns import column_blocks
from ..io.table_sizes import check_sizes
from ..io.tables import tsv_writer
from ..report.html_page import heading, preformatted, table, write_page

COUNT_COLUMNS = ("records", "virus", "others", "unscored", "regions")


def tabulate_samples(samples, out_tsv, out_html, failed=None):
    """`samples`: the samples that finished, {sample: (records_tsv, summary_txt, settings)},
    settings a flat {name: value} whose names are the same for every sample (columns after the
    counts); `failed`: those that did not, {sample: (why, settings)}: their counts are NA.
    DamagedFile names a records table or summary that is not as the aggregation wrote it."""
    for records_tsv, summary_txt, _ in samples.values():
        check_sizes(summary_txt, [records_tsv])
    failed = failed or {}
    every = [settings for *_, settings in samples.values()] + [s for _, s in failed.values()]
    setting_names = list(every[0]) if every else []
    header = ("sample", "status", *COUNT_COLUMNS, *setting_names, "failure")
    rows = [
        (sample, "finished", *_counts(records_tsv), *_settings(settings, setting_names), "")
        for sample, (records_tsv, _, settings) in samples.items()
    ]
    rows += [
        (sample, "failed", *["NA"] * len(COUNT_COLUMNS), *_settings(settings, setting_names), why)
        for sample, (why, settings) in failed.items()
    ]
    with atomic_open(out_tsv) as handle:
        writer = tsv_writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    summaries = {sample: Path(summary).read_text() for sample, (_, summary, _) in samples.items()}
    write_page(
        out_html,
        "Samples",
        [
            heading("Samples"),
            table(header, rows),
            *(heading(sample) + preformatted(text) for sample, text in summaries.items()),
        ],
    )


def _counts(records_tsv):
    """COUNT_COLUMNS of a records table, from its call and regions columns alone, read as
    arrays (table_columns.py): a sample may hold tens of millions of records."""
    counts = Counter()
    calls = ("virus", "others", "unscored")
    for rows in column_blocks(records_tsv, ("call", "regions")):
        counts["records"] += len(rows)
        counts["regions"] += int(rows.integers("regions").sum())
        each = np.bincount(rows.codes("call", calls), minlength=len(calls))
        counts.update(dict(zip(calls, each.tolist(), strict=True)))
    return [counts[name] for name in COUNT_COLUMNS]


def _settings(settings, names):
    return ("NA" if settings[name] is None else settings[name] for name in names)
