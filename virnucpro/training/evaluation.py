"""How well virus scores tell labelled viruses from the rest: the metrics of an evaluation set,
overall and by record length, as a dict (for JSON) and a tidy table, and one figure of the ROC
curve, the precision-recall curve and the reliability of the scores.

Labels are 1 for a virus and 0 for anything else; scores are the classifier's virus probability
(its softmax column 1). A record is called a virus when its score is at or above the threshold,
as the workflow calls chunks.
"""

import math
from itertools import pairwise

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from ..io.atomic import atomic_open
from ..io.damage import DamagedFile
from ..io.tables import read_tsv, tsv_writer
from ..planning.classifier_choice import PUBLISHED_CHUNK_SIZES
from ..report.plots import STYLE, save_svg

# [low, high) in bases, cut at the chunk sizes of the published classifiers too
LENGTH_BINS = (0, *PUBLISHED_CHUNK_SIZES, 1000, 5000, math.inf)
COUNTS = ("n", "positives", "tp", "fp", "tn", "fn")
RATES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
RELIABILITY_BINS = 10
RAW, CALIBRATED, GUIDE = "0.15", "#ff7f0e", "0.6"  # curve colours; the guide: chance, diagonal


def evaluate_scores(labels, scores, threshold=0.5, lengths=None, length_bins=LENGTH_BINS):
    """The metrics of `scores` against `labels`: the threshold, and each of COUNTS (the confusion
    matrix at the threshold among them) and RATES, pr_auc being the average precision. Where
    `lengths` are given, "by_length" holds the same for the records of each bin of `length_bins`
    (edges in bases, each bin [low, high)), with its "min_length" and "max_length" (None where
    the edge is infinite). A rate the records do not define is None: both AUCs where they are of
    one class only, precision where none is called a virus, and every rate of an empty bin."""
    labels, scores = _checked(labels, scores)
    metrics = {"threshold": threshold, **_metrics(labels, scores, threshold)}
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != labels.shape:
            raise ValueError(f"{lengths.size} lengths for {labels.size} scores")
        if np.any(np.diff(length_bins) <= 0):
            raise ValueError(f"length_bins must increase: {length_bins}")
        metrics["by_length"] = []
        for low, high in pairwise(length_bins):
            inside = (lengths >= low) & (lengths < high)
            edges = {"min_length": low, "max_length": None if math.isinf(high) else high}
            metrics["by_length"].append(edges | _metrics(labels[inside], scores[inside], threshold))
    return metrics


def _checked(labels, scores):
    """`labels` as integers and `scores` as floats, refused where they would give wrong metrics
    rather than an error: labels other than 0 and 1, scores that are not numbers."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must be 1-D and as long: shapes {labels.shape}, {scores.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 1 (virus) or 0 (not a virus)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite: leave out the records that have no score")
    return labels.astype(np.int64), scores


def _metrics(labels, scores, threshold):
    if not labels.size:  # scikit-learn refuses empty arrays; an empty bin has no rate
        return dict.fromkeys(COUNTS, 0) | dict.fromkeys(RATES)
    called = (scores >= threshold).astype(np.int64)
    # labels=[0, 1]: the full 2 x 2 matrix even where one class is absent
    tn, fp, fn, tp = confusion_matrix(labels, called, labels=[0, 1]).ravel().tolist()
    counts = {
        "n": labels.size,
        "positives": int(labels.sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, called, average="binary", zero_division=np.nan
    )
    both_classes = 0 < counts["positives"] < labels.size
    rates = {
        "accuracy": accuracy_score(labels, called),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc_score(labels, scores) if both_classes else math.nan,
        "pr_auc": average_precision_score(labels, scores) if both_classes else math.nan,
    }
    return counts | {name: None if math.isnan(v) else float(v) for name, v in rates.items()}


def write_metrics(metrics, tsv_path):
    """Write the metrics of evaluate_scores as a tidy table, one row per scope and metric: scope
    "all" or a length bin such as "length [300, 500)", value "NA" where undefined. Tables of
    several models or evaluation sets then stack and pivot as they are."""
    with atomic_open(tsv_path) as handle:
        writer = tsv_writer(handle)
        writer.writerow(("scope", "metric", "value"))
        for scope, name, value in _tidy(metrics):
            writer.writerow((scope, name, "NA" if value is None else value))


def _tidy(metrics):
    """(scope, metric, value) of each row of write_metrics' table, in its order."""
    yield "all", "threshold", metrics["threshold"]
    for scope, values in [("all", metrics)] + [
        (_scope(b), b) for b in metrics.get("by_length", ())
    ]:
        for name in COUNTS + RATES:
            yield scope, name, values[name]


def tabulate_evaluations(classifiers, metrics_tsvs, tsv_path):
    """Write one row per classifier ({name: path}, in the order of `metrics_tsvs`, the
    write_metrics tables of their evaluations by length in LENGTH_BINS): its name and path, the
    threshold, and its overall COUNTS (the confusion matrix at the threshold among them) and
    RATES as written. DamagedFile names a metrics table that lacks rows of such an evaluation
    (one cut short at a line end holds whole rows, fewer of them)."""
    layout = [(scope, name) for scope, name, _ in _tidy(evaluate_scores([], [], lengths=[]))]
    columns = ("threshold", *COUNTS, *RATES)
    with atomic_open(tsv_path) as handle:
        writer = tsv_writer(handle)
        writer.writerow(("classifier", "path", *columns))
        for (name, path), metrics_tsv in zip(classifiers.items(), metrics_tsvs, strict=True):
            rows = list(read_tsv(metrics_tsv))
            if [(row.scope, row.metric) for row in rows] != layout:
                raise DamagedFile(
                    metrics_tsv,
                    f"its {len(rows)} rows are not the {len(layout)} of an evaluation's metrics "
                    "overall and by length",
                )
            overall = {row.metric: row.value for row in rows if row.scope == "all"}
            writer.writerow((name, path, *(overall[column] for column in columns)))


def _scope(length_bin):
    high = length_bin["max_length"]
    return f"length [{length_bin['min_length']}, {'inf' if high is None else high})"


def plot_evaluation(labels, scores, out_svg, title, calibrated=None):
    """Write one SVG of three panels: the ROC curve, the precision-recall curve, and the
    reliability diagram (the fraction of viruses against the mean score in RELIABILITY_BINS bins
    of equal width; calibrated scores lie on the diagonal), there with the `calibrated` scores
    beside the raw ones where given. Calibration keeps the order of the scores (it may tie some),
    so the ROC and precision-recall curves show the raw scores alone."""
    labels, scores = _checked(labels, scores)
    if not 0 < labels.sum() < labels.size:
        raise ValueError("an evaluation figure needs both viruses and others among the labels")
    series = [("raw scores", RAW, scores)]
    if calibrated is not None:
        series.append(("calibrated", CALIBRATED, _checked(labels, calibrated)[1]))
    # scikit-learn's RocCurveDisplay and kin would draw these too, but their legends and chance
    # lines change between versions; drawn here, the panels follow STYLE like the other figures
    with rc_context(STYLE):
        fig = Figure(figsize=(10, 3.7), layout="constrained")
        roc, precision_recall, reliability = fig.subplots(1, 3)
        _roc(roc, labels, scores)
        _precision_recall(precision_recall, labels, scores)
        _reliability(reliability, labels, series)
        fig.suptitle(title)
        save_svg(fig, out_svg)


def _roc(ax, labels, scores):
    false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
    auc = roc_auc_score(labels, scores)
    ax.plot(false_positive_rate, true_positive_rate, color=RAW, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], color=GUIDE, linestyle="--", linewidth=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        aspect="equal",
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC curve",
    )
    ax.legend(loc="lower right", frameon=False)


def _precision_recall(ax, labels, scores):
    precision, recall, _ = precision_recall_curve(labels, scores)
    average_precision = average_precision_score(labels, scores)
    # steps: average precision is the area under this step function, not under straight lines
    ax.plot(
        recall, precision, drawstyle="steps-post", color=RAW, label=f"AP = {average_precision:.3f}"
    )
    prevalence = labels.mean()  # the precision of calling records viruses at random
    ax.axhline(
        prevalence, color=GUIDE, linestyle="--", linewidth=1, label=f"chance = {prevalence:.3f}"
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        aspect="equal",
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall curve",
    )
    ax.legend(loc="lower left", frameon=False)


def _reliability(ax, labels, series):
    ax.plot([0, 1], [0, 1], color=GUIDE, linestyle="--", linewidth=1, label="perfect calibration")
    for name, colour, scores in series:
        fraction, mean = calibration_curve(labels, scores, n_bins=RELIABILITY_BINS)
        ax.plot(mean, fraction, color=colour, marker="o", markersize=3, label=name)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        aspect="equal",
        xlabel="mean predicted virus probability",
        ylabel="fraction of viruses",
        title="Reliability diagram",
    )
    ax.legend(loc="upper left", frameon=False)
