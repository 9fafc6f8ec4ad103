"""Evaluation metrics on hand-computed examples, overall and by length bin, their tidy table and
the table of several classifiers, and the three-panel figure: well-formed SVG, its panels, the
same bytes on a rerun."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from virnucpro.io.damage import DamagedFile
from virnucpro.io.tables import read_tsv
from virnucpro.training.evaluation import (
    COUNTS,
    RATES,
    evaluate_scores,
    plot_evaluation,
    tabulate_evaluations,
    write_metrics,
)

# Ranked by score: 0.9+ 0.8+ 0.7+ 0.5- 0.4+ 0.3- 0.2- 0.1- (+ virus, - other), given shuffled.
# At threshold 0.5 (inclusive) the top four are called: tp 3, fp 1 (the 0.5), fn 1, tn 3; so
# accuracy 6/8, precision 3/4, recall 3/4, f1 3/4. ROC AUC: of the 4 x 4 (virus, other) pairs,
# the virus scores the higher in all but 0.4 against 0.5: 15/16. Average precision: the
# precision where each virus is reached, 1/1, 2/2, 3/3, 4/5, each weighed by a recall step of
# 1/4: (1 + 1 + 1 + 0.8) / 4 = 0.95.
LABELS = [0, 1, 0, 1, 1, 0, 0, 1]
SCORES = [0.2, 0.8, 0.5, 0.4, 0.9, 0.1, 0.3, 0.7]
PANELS = ("ROC curve", "Precision-recall curve", "Reliability diagram")


def test_metrics_of_a_hand_computed_example():
    metrics = evaluate_scores(LABELS, SCORES)
    assert metrics == {
        "threshold": 0.5,
        "n": 8,
        "positives": 4,
        "tp": 3,
        "fp": 1,
        "tn": 3,
        "fn": 1,
        "accuracy": 0.75,
        "precision": 0.75,
        "recall": 0.75,
        "f1": 0.75,
        "roc_auc": pytest.approx(15 / 16),
        "pr_auc": pytest.approx(0.95),
    }
    higher = evaluate_scores(LABELS, SCORES, threshold=0.75)  # calls 0.9, 0.8: tp 2, fn 2
    assert (higher["tp"], higher["fp"], higher["tn"], higher["fn"]) == (2, 0, 4, 2)
    assert (higher["precision"], higher["recall"]) == (1.0, 0.5)
    assert higher["roc_auc"] == metrics["roc_auc"]  # the AUCs do not depend on the threshold


def test_a_perfect_classifier_scores_one():
    metrics = evaluate_scores([0, 0, 0, 1, 1], [0.1, 0.3, 0.45, 0.55, 0.99])
    assert [metrics[name] for name in RATES] == [1.0] * len(RATES)


def test_no_virus_called_leaves_precision_undefined():
    metrics = evaluate_scores([0, 1, 1], [0.1, 0.2, 0.3])
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (0, 0, 2)
    assert metrics["precision"] is None
    assert (metrics["recall"], metrics["f1"], metrics["roc_auc"]) == (0.0, 0.0, 1.0)


def test_length_bins_split_the_records_and_one_class_has_no_auc():
    lengths = [100, 299, 300, 499, 500, 999, 5000, 80_000]
    labels = [1, 0, 1, 1, 0, 1, 0, 1]
    scores = [0.9, 0.2, 0.7, 0.8, 0.6, 0.4, 0.3, 0.95]
    metrics = evaluate_scores(labels, scores, lengths=lengths)
    bins = metrics["by_length"]
    assert [(b["min_length"], b["max_length"]) for b in bins] == [
        (0, 300),
        (300, 500),
        (500, 1000),
        (1000, 5000),
        (5000, None),
    ]
    assert [b["n"] for b in bins] == [2, 2, 2, 0, 2]  # [low, high): 300 in the 2nd, 5000 the last
    assert [b["positives"] for b in bins] == [1, 2, 1, 0, 1]
    assert bins[0]["roc_auc"] == bins[0]["pr_auc"] == 1.0
    assert bins[1]["roc_auc"] is None and bins[1]["pr_auc"] is None  # viruses only
    assert bins[1]["recall"] == 1.0
    assert bins[2]["fp"] == 1 and bins[2]["fn"] == 1 and bins[2]["roc_auc"] == 0.0  # 0.6- > 0.4+
    assert all(bins[3][name] is None for name in RATES)  # no record 1000-4999 bp long
    json.dumps(metrics, allow_nan=False)  # plain JSON: no NaN, no inf, no numpy types
    assert "by_length" not in evaluate_scores(labels, scores)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 2], [0.1, 0.9], "labels must be 1"),
        ([0, 1], [0.1, math.nan], "scores must be finite"),
        ([0, 1, 1], [0.1, 0.9], "as long"),
    ],
)
def test_labels_and_scores_that_would_mislead_are_refused(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        evaluate_scores(labels, scores)


def test_the_metrics_table_has_a_row_per_scope_and_metric(tmp_path):
    lengths = [100, 400, 200, 450, 600, 700, 800, 900]
    metrics = evaluate_scores(LABELS, SCORES, lengths=lengths, length_bins=(0, 300, 500, math.inf))
    path = tmp_path / "metrics.tsv"
    write_metrics(metrics, path)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.tsv"]  # no temporary file left
    rows = list(read_tsv(path))
    assert rows[0] == ("all", "threshold", "0.5")
    scopes = ["all", "length [0, 300)", "length [300, 500)", "length [500, inf)"]
    assert [(row.scope, row.metric) for row in rows[1:]] == [
        (scope, name) for scope in scopes for name in COUNTS + RATES
    ]
    table = {(row.scope, row.metric): row.value for row in rows}
    assert float(table["all", "roc_auc"]) == metrics["roc_auc"]  # full precision
    assert table["all", "tp"] == "3"
    assert table["length [0, 300)", "roc_auc"] == "NA"  # lengths 100, 200: others only
    assert table["length [500, inf)", "n"] == "4"


def test_the_classifiers_table_has_each_ones_overall_metrics(tmp_path):
    one, other = tmp_path / "one.tsv", tmp_path / "other.tsv"
    write_metrics(evaluate_scores(LABELS, SCORES, lengths=[100] * 8), one)
    write_metrics(evaluate_scores(LABELS, [0.1] * 8, lengths=[100] * 8), other)  # no precision
    table = tmp_path / "classifiers.tsv"
    tabulate_evaluations({"trained": "c.safetensors", "old": "300_model.pth"}, [one, other], table)
    rows = list(read_tsv(table))
    assert rows[0]._fields == ("classifier", "path", "threshold", *COUNTS, *RATES)
    assert [row[:6] for row in rows] == [
        ("trained", "c.safetensors", "0.5", "8", "4", "3"),
        ("old", "300_model.pth", "0.5", "8", "4", "0"),
    ]
    assert (rows[0].f1, rows[1].precision, rows[1].recall) == ("0.75", "NA", "0.0")


@pytest.mark.parametrize(
    ("keep", "problem"),
    [
        (lambda lines: lines[:-1], r"its 72 rows are not the 73 of an evaluation's metrics"),
        (lambda lines: lines[:14], r"its 13 rows are not the 73"),  # the overall rows whole
        (lambda lines: [*lines[:-1], lines[-1][:5]], "its last line is cut short"),
    ],
    ids=["at-a-line-end", "after-the-overall-rows", "inside-a-line"],
)
def test_a_metrics_table_cut_short_is_named(tmp_path, keep, problem):
    metrics = tmp_path / "metrics.tsv"
    write_metrics(evaluate_scores(LABELS, SCORES, lengths=[100] * 8), metrics)
    metrics.write_text("".join(keep(metrics.read_text().splitlines(keepends=True))))
    with pytest.raises(DamagedFile, match=f"{metrics} is damaged: {problem}"):
        tabulate_evaluations({"trained": "c.safetensors"}, [metrics], tmp_path / "table.tsv")


def svg_texts(path):
    """The texts of a well-formed SVG file."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return {"".join(element.itertext()) for element in root.iter() if element.tag.endswith("text")}


def test_the_figure_has_three_panels_and_the_same_bytes_on_a_rerun(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(0.3 * labels + rng.uniform(0, 0.7, 400), 0, 1)
    calibrated = np.sqrt(scores)  # any second series in [0, 1]
    for name in "one.svg", "two.svg":
        plot_evaluation(labels, scores, tmp_path / name, "test set", calibrated=calibrated)
    assert (tmp_path / "one.svg").read_bytes() == (tmp_path / "two.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.svg", "two.svg"]
    texts = svg_texts(tmp_path / "one.svg")
    assert set(PANELS) | {"test set", "raw scores", "calibrated"} <= texts
    metrics = evaluate_scores(labels, scores)
    assert f"AUC = {metrics['roc_auc']:.3f}" in texts
    assert f"AP = {metrics['pr_auc']:.3f}" in texts

    plot_evaluation(labels, scores, tmp_path / "raw.svg", "test set")
    raw = svg_texts(tmp_path / "raw.svg")
    assert set(PANELS) | {"raw scores"} <= raw
    assert "calibrated" not in raw


def test_a_figure_of_one_class_is_refused(tmp_path):
    with pytest.raises(ValueError, match="both viruses and others"):
        plot_evaluation([1, 1], [0.2, 0.9], tmp_path / "one.svg", "viruses only")
