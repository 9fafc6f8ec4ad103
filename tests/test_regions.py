"""Viral regions from chunk score tracks whose boundaries are known."""

import numpy as np
import pytest

from virnucpro.calls.regions import viral_segments

THRESHOLD, PENALTY = 0.5, 0.4  # the defaults (regions.RegionSettings)


def track(rng, length, viral_runs):
    """Host chunks score 0-0.35, viral ones 0.65-1 (a classifier that mostly agrees with the
    truth, as on contigs: scores well apart, never exact)."""
    scores = rng.uniform(0.0, 0.35, length)
    for first, last in viral_runs:
        scores[first : last + 1] = rng.uniform(0.65, 1.0, last - first + 1)
    return scores


def random_runs(rng, length):
    """One or two viral runs of 3 chunks or more, apart by 3 chunks or more."""
    runs, at = [], int(rng.integers(0, 6))
    for _ in range(int(rng.integers(1, 3))):
        first, last = at, at + int(rng.integers(3, 12))
        if last >= length:
            break
        runs.append((first, last))
        at = last + 4 + int(rng.integers(0, 8))
    return runs


@pytest.mark.parametrize("seed", range(40))
def test_each_boundary_is_found_within_one_chunk(seed):
    rng = np.random.default_rng(seed)
    length = int(rng.integers(15, 80))
    truth = random_runs(rng, length)
    found = viral_segments(track(rng, length, truth), THRESHOLD, PENALTY)
    assert len(found) == len(truth), (truth, found)
    for (first, last), (got_first, got_last) in zip(truth, found, strict=True):
        assert abs(first - got_first) <= 1 and abs(last - got_last) <= 1, (truth, found)


@pytest.mark.parametrize("seed", range(20))
def test_a_flat_host_track_has_no_region_even_with_one_high_chunk(seed):
    rng = np.random.default_rng(100 + seed)
    scores = track(rng, int(rng.integers(4, 200)), [])
    assert viral_segments(scores, THRESHOLD, PENALTY) == []
    scores[int(rng.integers(0, len(scores)))] = 0.95  # one odd chunk is no region
    assert viral_segments(scores, THRESHOLD, PENALTY) == []


def test_a_wholly_viral_track_is_one_region():
    scores = track(np.random.default_rng(7), 30, [(0, 29)])
    assert viral_segments(scores, THRESHOLD, PENALTY) == [(0, 29)]


def test_viral_segments_of_different_levels_side_by_side_are_one_region():
    scores = np.r_[np.full(10, 0.1), np.full(6, 0.7), np.full(6, 0.99), np.full(10, 0.1)]
    assert viral_segments(scores, THRESHOLD, PENALTY) == [(10, 21)]


def test_tracks_too_short_to_cut_are_judged_whole():
    assert viral_segments([0.9, 0.8, 0.2], THRESHOLD, PENALTY) == [(0, 2)]
    assert viral_segments([0.1], THRESHOLD, PENALTY) == []
