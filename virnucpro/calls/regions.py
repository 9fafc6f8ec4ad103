"""Viral regions of a long record (a prophage, a chimeric contig) from its track of chunk
scores: the track is cut at its change points, found by ruptures' PELT under a least-squares
cost (exact for that cost, and linear in the track's length on average), and each segment whose
mean score reaches the threshold is viral; neighbouring viral segments are one region. A
change-point method needs no smoothing window: a boundary is placed where the mean shifts, so
it lands within a chunk of the true one, and a flat track is never cut."""

from dataclasses import dataclass

import numpy as np

MIN_SEGMENT_CHUNKS = 2  # a single chunk is no region: one odd chunk is noise


@dataclass(frozen=True)
class RegionSettings:
    min_chunks: int = 4  # scored chunks a record needs to be segmented
    penalty: float = 0.4  # cost of a change point, squared score units (tests/test_regions.py)


def viral_segments(track, threshold, penalty):
    """(first, last) indices, inclusive, of the viral runs of `track` (scores in [0, 1])."""
    track = np.asarray(track, dtype=np.float64)
    if len(track) < 2 * MIN_SEGMENT_CHUNKS:
        ends = [len(track)]
    else:
        # imported here, when a track is first cut: a sample of reads has none to cut and
        # is spared its import (0.6 s, most of it scipy's)
        import ruptures

        pelt = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT_CHUNKS, jump=1)
        ends = pelt.fit(track.reshape(-1, 1)).predict(pen=penalty)
    runs, start = [], 0
    for end in ends:
        if track[start:end].mean() >= threshold:
            if runs and runs[-1][1] == start - 1:
                runs[-1] = (runs[-1][0], end - 1)
            else:
                runs.append((start, end - 1))
        start = end
    return runs
