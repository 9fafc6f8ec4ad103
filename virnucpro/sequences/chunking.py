"""Where each chunk of an input record starts and ends (SPEC §1)."""

MODES = ("overlap", "legacy")


def chunk_spans(length, size, mode="overlap"):
    """Return the [start, end) spans of the chunks of a record `length` bases long.

    overlap: every chunk is exactly `size` long, the overlap spread over the junctions.
    legacy: the original's arithmetic (it divides the overlap by n instead of n-1), whose last
    chunk is often short. Both give one chunk, the whole record, when length <= size, and none
    for an empty record.
    """
    if length == 0:
        return []
    if length <= size:
        return [(0, length)]
    n = -(-length // size)
    spare = n * size - length
    if mode == "overlap":
        base, longer = divmod(spare, n - 1)
        overlaps = [base + 1] * longer + [base] * (n - 1 - longer)
    elif mode == "legacy":
        low = spare // n
        longer = spare - (n - 1) * low
        overlaps = [low + 1] * longer + [low] * max(0, n - 1 - longer)
    else:
        raise ValueError(f"chunking mode must be one of {MODES}, not {mode!r}")
    spans = []
    shift = 0
    for k in range(n):
        start = k * size - shift
        spans.append((start, min(start + size, length)))
        if k < n - 1:
            shift += overlaps[k]
    return spans
