"""Virus scores made probabilities: a calibration fitted on held-out labelled records, kept as
JSON in the classifier file's header, and the false discovery rate it lets one estimate without
labels.

Isotonic regression, not temperature scaling. Temperature scaling divides the logit by one
number: it makes scores more or less confident about 0.5 but cannot move 0.5 itself, and the
classifier is off in a way that needs it moved: its training set's share of viruses is not that
of the evaluation sets and samples, and such a difference shifts the logit rather than scaling
it. Isotonic regression assumes only that a higher score never makes a virus less likely,
so it fixes any such distortion, and it keeps the order of the scores (it may tie some), so the
ROC curve stays as it was. Its costs: it needs thousands of held-out records rather than dozens,
which an evaluation set has, and it is flat where they are few, and beyond the scores it saw.

A calibrated probability is P(virus | score) among records like the held-out ones, their share
of viruses included: on a sample of another composition (a metagenome of 1% viruses, say) the
probabilities, and the false discovery rate estimated from them, are off accordingly.
"""

import json
from dataclasses import dataclass

import numpy as np

from ..io.classifier_header import CALIBRATION_KEY, classifier_metadata


@dataclass(frozen=True, eq=False)
class Calibration:
    """A map of virus scores to calibrated virus probabilities: linear between the points
    (scores[i], probabilities[i]) and constant beyond the first and last, which is how
    scikit-learn's IsotonicRegression(out_of_bounds="clip") predicts, so that applying it needs
    neither scikit-learn nor a pickle of its object."""

    scores: np.ndarray  # strictly increasing
    probabilities: np.ndarray  # non-decreasing, in [0, 1]

    def __post_init__(self):
        scores = np.array(self.scores, dtype=np.float64)
        probabilities = np.array(self.probabilities, dtype=np.float64)
        # np.interp checks none of this and would give wrong probabilities without a word, from
        # a damaged or hand-made file
        if scores.ndim != 1 or scores.shape != probabilities.shape or not scores.size:
            raise ValueError(
                "a calibration needs as many scores as probabilities, 1 or more: shapes "
                f"{scores.shape}, {probabilities.shape}"
            )
        if not (np.isfinite(scores).all() and np.all(np.diff(scores) > 0)):
            raise ValueError("a calibration's scores must be finite and strictly increasing")
        rising = np.all(np.diff(probabilities) >= 0)
        if not (rising and probabilities[0] >= 0 and probabilities[-1] <= 1):
            raise ValueError("a calibration's probabilities must be non-decreasing, in [0, 1]")
        for array in scores, probabilities:
            array.flags.writeable = False  # frozen: no caller changes it under another
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "probabilities", probabilities)

    def apply(self, scores):
        """The calibrated virus probabilities of `scores`."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.scores, self.probabilities)

    def to_json(self):
        """The calibration as JSON, {"scores": [...], "probabilities": [...]}, for the header of
        the classifier file, which refuses tensors not the classifier's own. Exact: json writes
        a float as its shortest repr, which reads back as the same float64."""
        return json.dumps(
            {"scores": self.scores.tolist(), "probabilities": self.probabilities.tolist()}
        )

    @classmethod
    def from_json(cls, text):
        """The calibration that to_json wrote as `text`, checked like any other."""
        arrays = json.loads(text)
        return cls(np.array(arrays["scores"]), np.array(arrays["probabilities"]))


def classifier_calibration(path):
    """The calibration the classifier file `path` holds, None where it holds none (the
    original's `.pth`, one saved untrained or whose held-out frames were of one class)."""
    text = classifier_metadata(path).get(CALIBRATION_KEY)
    return None if text is None else Calibration.from_json(text)


def fit_calibration(scores, labels):
    """The isotonic calibration of the virus `scores` of held-out records to their `labels`
    (1 = virus). Held out: the classifier scores the records it was trained on over-confidently,
    and a calibration fitted on them would keep that."""
    # imported here: the aggregation reads calibrations, and need not load scikit-learn for it
    from sklearn.isotonic import IsotonicRegression

    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 1 (virus) or 0 (not a virus)")
    if not 0 < labels.sum() < labels.size:
        raise ValueError("a calibration needs both viruses and others among the labels")
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, labels)
    return Calibration(fitted.X_thresholds_, fitted.y_thresholds_)


def false_discovery_rate(calibrated_scores, threshold):
    """The estimated false discovery rate of calling viruses the records whose calibrated virus
    probability p is at or above `threshold`: the mean of 1 - p over them, None where there are
    none. Each is not a virus with probability 1 - p if the calibration holds for them, so the
    sum of 1 - p is the expected number of false calls among them and its mean the expected
    fraction: an estimate from the scores alone, for a sample without labels, as good as the
    calibration is for that sample."""
    probabilities = np.asarray(calibrated_scores, dtype=np.float64)
    called = probabilities[probabilities >= threshold]
    return float(np.mean(1 - called)) if called.size else None


def false_discovery_rates(calibrated_scores):
    """false_discovery_rate(calibrated_scores, p) for each p of `calibrated_scores`, NaN for
    NaN: the estimated false discovery rate of a threshold set at each record, a q-value's
    analogue. One sort and suffix sums: O(n log n) where a threshold at each record would take
    O(n^2), and a sample can have millions."""
    probabilities = np.asarray(calibrated_scores, dtype=np.float64)
    known = ~np.isnan(probabilities)
    ascending = np.sort(probabilities[known])
    false_at_or_above = np.cumsum((1 - ascending)[::-1])[::-1]
    # the first of ties: a threshold at p calls every record of p
    first = np.searchsorted(ascending, probabilities[known], side="left")
    rates = np.full(probabilities.shape, np.nan)
    rates[known] = false_at_or_above[first] / (ascending.size - first)
    return rates
