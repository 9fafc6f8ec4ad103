"""Isotonic calibration: a hand-computed fit, over-confident scores brought near their true
probabilities, the map monotone and clipped and the same as scikit-learn's, its arrays exactly
through JSON, damaged arrays refused, and the false discovery rate of a hand example and at
every record."""

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from virnucpro.calls.calibration import (
    Calibration,
    false_discovery_rate,
    false_discovery_rates,
    fit_calibration,
)


def overconfident(size, seed):
    """Records whose true virus probability p is uniform on [0, 1], labels drawn with it, and
    scores p**0.3, which overstate it (0.1 scores 0.5, 0.5 scores 0.81)."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(size=size)
    labels = (rng.uniform(size=size) < true).astype(np.int64)
    return true, labels, true**0.3


def test_a_fit_by_hand():
    # scores 0.1 0.2 0.3 0.4 labelled 0 1 0 1: the pair 1, 0 violates the order and pools to
    # 0.5, 0.5; between the points the map is linear, beyond them constant
    calibration = fit_calibration([0.3, 0.1, 0.4, 0.2], [0, 0, 1, 1])
    assert calibration.scores.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert calibration.probabilities.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert calibration.apply([0.0, 0.15, 0.25, 0.35, 1.0]) == pytest.approx([0, 0.25, 0.5, 0.75, 1])


def test_calibration_brings_overconfident_scores_near_their_true_probability():
    _, labels, scores = overconfident(20_000, seed=1)
    calibration = fit_calibration(scores, labels)
    true, _, held_out = overconfident(20_000, seed=2)  # judged on records it was not fitted on
    raw_error = np.mean(np.abs(held_out - true))  # 1/1.3 - 1/2 = 0.27 expected
    calibrated_error = np.mean(np.abs(calibration.apply(held_out) - true))
    assert raw_error > 0.25
    assert calibrated_error < raw_error / 8


def test_the_map_is_monotone_clipped_and_that_of_scikit_learn():
    _, labels, scores = overconfident(2_000, seed=3)
    calibration = fit_calibration(scores, labels)
    grid = np.linspace(-0.5, 1.5, 4001)  # beyond the scores seen, on both sides
    calibrated = calibration.apply(grid)
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    assert calibrated[0] == calibration.probabilities[0]
    assert calibrated[-1] == calibration.probabilities[-1]
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, labels)
    np.testing.assert_allclose(calibrated, fitted.predict(grid), rtol=0, atol=1e-15)


def test_the_arrays_round_trip_exactly_through_json():
    _, labels, scores = overconfident(2_000, seed=4)
    calibration = fit_calibration(scores, labels)
    text = calibration.to_json()
    assert set(json.loads(text)) == {"scores", "probabilities"}
    again = Calibration.from_json(text)
    assert again.scores.dtype == again.probabilities.dtype == np.float64
    # bit for bit, not approximately: the header keeps no other copy of the arrays
    assert again.scores.tobytes() == calibration.scores.tobytes()
    assert again.probabilities.tobytes() == calibration.probabilities.tobytes()
    assert np.array_equal(again.apply(scores), calibration.apply(scores))


def test_json_that_would_mislead_is_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        Calibration.from_json('{"scores": [0.5, 0.1], "probabilities": [0.2, 0.3]}')


@pytest.mark.parametrize(
    ("scores", "probabilities", "message"),
    [
        ([0.1, 0.5], [0.2], "as many scores"),
        ([], [], "as many scores"),
        ([0.5, 0.1], [0.2, 0.3], "strictly increasing"),
        ([0.1, np.nan], [0.2, 0.3], "strictly increasing"),
        ([0.1, 0.5], [0.3, 0.2], "non-decreasing"),
        ([0.1, 0.5], [0.3, 1.2], "in \\[0, 1\\]"),
    ],
)
def test_arrays_that_would_mislead_are_refused(scores, probabilities, message):
    with pytest.raises(ValueError, match=message):
        Calibration(np.array(scores), np.array(probabilities))


def test_a_calibration_cannot_change():
    calibration = Calibration(np.array([0.1, 0.5]), np.array([0.2, 0.9]))
    with pytest.raises(ValueError, match="read-only"):
        calibration.probabilities[0] = 1.0


def test_a_fit_needs_both_classes_and_binary_labels():
    with pytest.raises(ValueError, match="both viruses and others"):
        fit_calibration([0.2, 0.9], [1, 1])
    with pytest.raises(ValueError, match="labels must be 1"):
        fit_calibration([0.2, 0.9], [0, 2])


def test_the_false_discovery_rate_of_a_hand_example():
    calibrated = [0.95, 0.3, 0.8, 0.6, 0.9]
    # at 0.8 (inclusive) 0.95, 0.9 and 0.8 are called: (0.05 + 0.1 + 0.2) / 3
    assert false_discovery_rate(calibrated, 0.8) == pytest.approx(0.35 / 3)
    assert false_discovery_rate(calibrated, 0.5) == pytest.approx((0.05 + 0.1 + 0.2 + 0.4) / 4)
    assert false_discovery_rate(calibrated, 0.99) is None


def test_the_false_discovery_rate_at_every_record_is_that_of_a_threshold_there():
    rng = np.random.default_rng(5)
    calibrated = np.concatenate([rng.uniform(size=300), [0.5, 0.5, 0.5, 0.0, 1.0, np.nan]])
    rng.shuffle(calibrated)
    known = calibrated[~np.isnan(calibrated)]
    expected = [np.nan if np.isnan(p) else false_discovery_rate(known, p) for p in calibrated]
    np.testing.assert_allclose(false_discovery_rates(calibrated), expected, rtol=0, atol=1e-12)
    assert false_discovery_rates([]).shape == (0,)
