"""A sample's calls written out once aggregated: its viral sequences as FASTA, its three figures
and its page of calls for the report, made side by side in the aggregation's job (the figures
and the page in a process of their own while the FASTA's workers read the input again), so
that a sample pays one job's start for its results, not four, and a run of many samples plans
fewer jobs."""

import os
from concurrent.futures import ProcessPoolExecutor

from ..calls.virus_fasta import write_virus_fasta
from ..report.calls_page import write_calls_page
from ..report.plots import plot_sample
from ..runtime.lifeline import end_with


def write_sample_outputs(
    sample, fasta, parts_tsv, tables, rows, rule, outputs, workers=1, random_weights=False
):
    """`tables`: the aggregation's .records, .chunks, .regions and .summary, `rows` where each
    part's rows lie in them (what stages.aggregate.aggregate_sample returns); `rule`: the
    calling.CallRule the calls were made by; `outputs`: the paths .fna and .regions_fna
    (virus_fasta.write_virus_fasta), .distribution, .length and .tracks (plots.plot_sample)
    and .calls (calls_page.write_calls_page); `random_weights`: whether the embedding models'
    weights are random, which the figures and the page say. `workers` processes in all."""
    lifeline = (os.getpid(), "the process that started this worker")
    with ProcessPoolExecutor(1, initializer=end_with, initargs=lifeline) as side:
        drawn = side.submit(
            plot_sample,
            sample,
            tables.records,
            tables.chunks,
            tables.regions,
            rule,
            outputs.distribution,
            outputs.length,
            outputs.tracks,
            random_weights=random_weights,
        )
        page = side.submit(
            write_calls_page,
            sample,
            tables.records,
            tables.regions,
            tables.summary,
            rule,
            outputs.calls,
            random_weights,
        )
        write_virus_fasta(
            fasta,
            parts_tsv,
            tables.records,
            tables.regions,
            rows,
            outputs.fna,
            outputs.regions_fna,
            workers=max(1, workers - 1),
        )
        drawn.result()
        page.result()
