"""The result figures and the report's page of calls on hand-written tables: well-formed SVG,
every record on the side of the drawn call rule its call says under each rule, the records
chosen for the tracks and their order, the regions marked, a mark on the figures of random
weights, the same bytes on a rerun, a figure even of no data, and the page's records ranked by
the rule's score."""

import re

import pytest

from virnucpro.calls.calling import ORIGINAL_RULE, CallRule
from virnucpro.calls.part_calls import CHUNK_COLUMNS, RECORD_COLUMNS, REGION_COLUMNS
from virnucpro.report import calls_page
from virnucpro.report.calls_page import write_calls_page
from virnucpro.report.plots import BIN_ABOVE, RANDOM_WEIGHTS, plot_sample

from figures import check_figures_follow_the_calls, svg_texts
from stages import table

FIGURES = ("distribution.svg", "length.svg", "tracks.svg")


def write_sample(directory, records, rule=ORIGINAL_RULE):
    """Write the three tables of `records`, {record_id: (chunk scores, regions)}, called by
    `rule`: chunks of 500 bp, each of one frame (its others score 1 - its virus score), None the
    score of a chunk without one, a region the numbers of its first and last chunk."""
    record_rows, chunk_rows, region_rows = [], [], []
    for record_id, (scores, regions) in records.items():
        scored = [s for s in scores if s is not None]
        viral = [s for s in scored if rule.chunk_is_virus(1 - s, s)]
        if scored:
            best, others = max(scored), 1 - min(scored)
            fraction, bases = len(viral) / len(scored), 500 * len(viral)
            call = rule.record_call(others, best, fraction, bases, len(scored))
            numbers = (fraction, bases, others, best, sum(scored) / len(scored))
        else:
            call, numbers = "unscored", ("NA",) * 5
        record_rows.append(
            (record_id, 500 * len(scores), len(scores), len(scored), len(viral), *numbers)
            + ("NA", "NA", len(regions), call, "" if scored else "no stop-free frame")
        )  # NA NA: a virus probability and FDR need a calibrated classifier
        for k, s in enumerate(scores, 1):
            chunk = (f"{record_id}_chunk_{k}", record_id, 500 * k - 499, 500 * k, 500)
            if s is None:
                chunk_rows.append((*chunk, "", "NA", "NA", "NA", "no stop-free frame"))
            else:
                chunk_rows.append((*chunk, "F1", 1 - s, s, s in viral, ""))
        for first, last in regions:
            inside = scores[first - 1 : last]
            start, end = 500 * first - 499, 500 * last
            region_rows.append(
                (f"{record_id}|region_{start}_{end}", record_id, start, end)
                + (500 * (last - first + 1), f"{record_id}_chunk_{first}")
                + (f"{record_id}_chunk_{last}", len(inside), sum(inside) / len(inside))
                + (max(inside),)
            )
    return (
        table(directory / "records.tsv", RECORD_COLUMNS, record_rows),
        table(directory / "chunks.tsv", CHUNK_COLUMNS, chunk_rows),
        table(directory / "regions.tsv", REGION_COLUMNS, region_rows),
    )


def plot(tables, out, max_tracks=12, rule=ORIGINAL_RULE, random_weights=False):
    """Draw the figures of `tables` into `out`; the chosen record ids and the figures' texts."""
    ids = plot_sample(
        "S1",
        *tables,
        rule,
        *(out / name for name in FIGURES),
        max_tracks=max_tracks,
        random_weights=random_weights,
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(FIGURES)  # no temporary file left
    return ids, [svg_texts(out / name) for name in FIGURES]


def titles(texts):
    """The panel titles of the tracks figure."""
    return [text for text in texts if " bp, " in text]


def test_the_tracks_show_records_with_regions_then_the_best_scored(tmp_path):
    tables = write_sample(
        tmp_path,
        {
            "A": ([0.2, 0.9, 0.8, 0.1], [(2, 3)]),
            "B": ([0.95, 0.1, 0.7, 0.6], [(1, 1), (3, 4)]),  # most regions: first
            "C": ([0.99, 0.98], []),
            "D": ([0.999], []),  # one scored chunk: no track
            "E": ([0.3, None, 0.2], []),
            "F": ([None, None], []),  # unscored
            "G": ([0.9, 0.4], [(1, 1)]),  # as A's regions and best score: after A, in table order
        },
    )
    out = tmp_path / "figures"
    ids, (distribution, length, tracks) = plot(tables, out)
    assert ids == ["B", "A", "G", "C", "E"]
    assert titles(tracks) == [
        "B  (2,000 bp, virus)",
        "A  (2,000 bp, virus)",
        "G  (1,000 bp, virus)",
        "C  (1,000 bp, virus)",
        "E  (1,500 bp, others)",
    ]
    # regions labelled by their ids less the record's, which the panel title names
    assert [text for text in tracks if text.startswith("region_")] == [
        "region_1_500",
        "region_1001_2000",
        "region_501_1500",
        "region_1_500",
    ]
    assert "S1: chunk virus scores along the records" in tracks
    assert "unscored (n = 1, not drawn)" in distribution
    assert {"virus (n = 5)", "others (n = 1)", "call rule: virus from 0"} <= set(length)
    assert "region threshold 0.5" in tracks
    svg = (out / "tracks.svg").read_text()
    assert "#d62728" in svg and "#1f77b4" in svg  # viral chunks red, the others blue


def test_the_tracks_are_capped_at_max_tracks(tmp_path):
    records = {f"r{k}": ([k / 20, k / 20], []) for k in range(20)}
    records["low"] = ([0.6, 0.2, 0.1], [(1, 1)])
    ids, (*_, tracks) = plot(write_sample(tmp_path, records), tmp_path / "figures", max_tracks=4)
    assert ids == ["low", "r19", "r18", "r17"]
    assert len(titles(tracks)) == 4


def test_many_records_are_counted_in_bins_and_a_rerun_writes_the_same_bytes(tmp_path):
    many = BIN_ABOVE + 100
    records = {f"read{k}": ([(k * 7919 % 1000) / 1000], []) for k in range(many)}
    records["contig"] = ([0.9, 0.8, 0.1], [(1, 2)])
    tables = write_sample(tmp_path, records)
    ids, (_, length, tracks) = plot(tables, tmp_path / "one")
    plot(tables, tmp_path / "two")
    for name in FIGURES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    svg = (tmp_path / "one" / "length.svg").read_text()
    assert "<image" in svg  # the bins drawn as one image per call, not a mark each
    assert len(svg) < 200_000
    # a panel per call, its records counted on a log colour scale
    virus = sum(1 for k in range(many) if (k * 7919 % 1000) / 1000 >= 0.5) + 1
    assert {f"virus (n = {virus:,})", f"others (n = {many + 1 - virus:,})"} <= set(length)
    assert length.count("records per bin") == 2
    assert "S1: the call rule's score against record length (dashed: virus from 0)" in length
    assert ids == ["contig"] and titles(tracks) == ["contig  (1,500 bp, virus)"]


def test_empty_tables_give_figures_with_a_note(tmp_path):
    ids, (distribution, length, tracks) = plot(write_sample(tmp_path, {}), tmp_path / "figures")
    assert ids == []
    assert "no record has a score" in distribution
    assert "no record has a score" in length
    assert "no record has 2 or more scored chunks" in "\n".join(tracks)


def test_short_reads_give_a_tracks_figure_with_a_note(tmp_path):
    records = {f"read{k}": ([k / 10], []) for k in range(10)}
    ids, (distribution, _, tracks) = plot(write_sample(tmp_path, records), tmp_path / "figures")
    assert ids == []
    assert {"virus (n = 5)", "others (n = 5)"} <= set(distribution)
    assert "no record has 2 or more scored chunks" in "\n".join(tracks)


# records of one frame per chunk, its others score 1 - its virus score: A's best virus score,
# 0.55, is above 0.5 but below its best others score, 0.7; H ties (virus, as the original)
RULE_RECORDS = {
    "A": ([0.55, 0.3], []),
    "B": ([0.9, 0.6], []),
    "C": ([0.7, 0.45, 0.8, 0.65], []),
    "D": ([0.2], []),
    "E": ([0.52, 0.51, 0.1, 0.49], []),
    "F": ([0.95, 0.2, 0.1, 0.1], []),  # one viral chunk in four: too little for a fraction 0.5
    "G": ([None], []),
    "H": ([0.5], []),
}


@pytest.mark.parametrize(
    "rule",
    [CallRule(), CallRule(min_virus_score=0.6), CallRule(min_virus_fraction=0.5)],
    ids=["original", "min_virus_score", "min_virus_fraction"],
)
def test_every_record_lies_on_the_side_of_the_drawn_rule_its_call_says(tmp_path, rule):
    tables = write_sample(tmp_path, RULE_RECORDS, rule)
    out = tmp_path / "figures"
    _, (distribution, length, _) = plot(tables, out, rule=rule)
    check_figures_follow_the_calls(out / "distribution.svg", out / "length.svg", tables[0], rule)
    axis = "best_virus_score" if rule.min_virus_score else "best_virus_score - best_others_score"
    assert axis in length and f"{axis} of the record" in distribution
    assert f"call rule: virus from {rule.boundary:g}" in length
    assert ("others, too little viral (n = 1)" in length) == bool(rule.min_virus_fraction)


def test_the_figures_of_random_weights_say_so(tmp_path):
    tables = write_sample(tmp_path, RULE_RECORDS)
    _, texts = plot(tables, tmp_path / "figures", random_weights=True)
    assert all(RANDOM_WEIGHTS in "\n".join(figure) for figure in texts)
    _, texts = plot(tables, tmp_path / "again")
    assert not any(RANDOM_WEIGHTS in "\n".join(figure) for figure in texts)


def test_the_calls_page_ranks_the_records_by_the_rules_score(tmp_path, monkeypatch):
    records, _, regions = write_sample(tmp_path, RULE_RECORDS)
    summary = tmp_path / "summary.txt"
    summary.write_text("calls: <the rule>\n")

    def page(rule):
        out = tmp_path / "calls.html"
        write_calls_page("S1", records, regions, summary, rule, out, random_weights=True)
        text = out.read_text()
        return text, re.findall(r"<tr><td>(\w)</td><td>(\w+)</td><td>([^<]*)</td>", text)

    text, rows = page(ORIGINAL_RULE)
    # best_virus_score - best_others_score, highest first; the unscored record last
    assert [(record, call) for record, call, _ in rows] == [
        ("B", "virus"),
        ("C", "virus"),
        ("F", "virus"),
        ("H", "virus"),
        ("A", "others"),
        ("E", "others"),
        ("D", "others"),
        ("G", "unscored"),
    ]
    assert [score for record, _, score in rows if record in "AH"] == ["0", "-0.15"]
    assert "All 8 records" in text and RANDOM_WEIGHTS in text
    assert "calls: &lt;the rule&gt;" in text  # the summary, escaped
    monkeypatch.setattr(calls_page, "MAX_ROWS", 3)
    text, rows = page(CallRule(min_virus_score=0.6))
    assert [record for record, *_ in rows] == ["F", "B", "C"]  # by best_virus_score
    assert "The 3 of 8 records of the highest score" in text
