import pytest

from virnucpro.sequences.chunking import chunk_spans


def lengths(spans):
    return [end - start for start, end in spans]


@pytest.mark.parametrize(
    ("length", "expected"),  # SPEC §1's worked examples of the original's arithmetic
    [
        (501, [500, 251]),
        (600, [500, 301]),
        (1001, [500, 500, 335]),
        (2345, [500] * 4 + [473]),
        (1500, [500] * 3),
        (3000, [500] * 6),
    ],
)
def test_legacy_matches_the_spec_examples(length, expected):
    assert lengths(chunk_spans(length, 500, "legacy")) == expected


@pytest.mark.parametrize("size", [300, 500])
def test_overlap_chunks_are_exact_and_cover_the_record(size):
    for length in range(size + 1, 8 * size + 3):
        spans = chunk_spans(length, size, "overlap")
        assert len(spans) == -(-length // size)
        assert all(end - start == size for start, end in spans)
        assert spans[0][0] == 0 and spans[-1][1] == length
        overlaps = [spans[i][1] - spans[i + 1][0] for i in range(len(spans) - 1)]
        assert sum(overlaps) == len(spans) * size - length
        assert max(overlaps) - min(overlaps) <= 1  # spread evenly, larger ones first
        assert overlaps == sorted(overlaps, reverse=True)


@pytest.mark.parametrize("mode", ["overlap", "legacy"])
def test_short_and_empty_records(mode):
    assert chunk_spans(0, 500, mode) == []
    assert chunk_spans(1, 500, mode) == [(0, 1)]
    assert chunk_spans(500, 500, mode) == [(0, 500)]


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="chunking mode"):
        chunk_spans(1000, 500, "even")
