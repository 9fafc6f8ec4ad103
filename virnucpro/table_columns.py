"""Some columns of a large table (tables.tsv_writer's dialect) as numpy arrays, a block of whole
rows at a time, for the stages that read one or a few columns of tens of millions of rows.

numpy rather than the csv module: the fields are cut at the positions of the block's tabs and
line breaks in a few vectorized passes, where csv makes Python objects of every field of every
row (seconds per million rows). This holds for tables whose fields hold no tab or line break,
which tsv_writer would quote: the workflow's are such (ids are FASTA header words, the rest are
numbers, calls and reasons)."""

import numpy as np

BLOCK_BYTES = 1 << 24


def column_blocks(path, names):
    """Yield, for each block of whole rows of the table `path`, ({name: its fields, a bytes
    ('S') array, of each column of `names`}, the byte offset of each row in the file: int64).
    ValueError where a row has other than the header's number of fields."""
    with open(path, "rb") as handle:
        header = handle.readline().rstrip(b"\n").decode().split("\t")
        picked = {name: header.index(name) for name in names}
        offset, rest = handle.tell(), b""
        while data := handle.read(BLOCK_BYTES):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                columns, starts = _fields(path, data[:cut], len(header), picked)
                yield columns, offset + starts
            offset, rest = offset + cut, data[cut:]
    if rest:
        raise ValueError(f"{path}: its last row is cut short")


def _fields(path, block, width, picked):
    text = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero((text == ord("\t")) | (text == ord("\n")))  # of every field
    if len(ends) % width or np.any(text[ends[width - 1 :: width]] != ord("\n")):
        raise ValueError(f"{path}: a row does not hold the {width} fields of its header")
    ends = ends.reshape(-1, width)
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    starts[0, 0], starts[1:, 0] = 0, ends[:-1, -1] + 1
    columns = {name: _gather(text, starts[:, i], ends[:, i]) for name, i in picked.items()}
    return columns, starts[:, 0]


def _gather(text, starts, ends):
    """The bytes [starts[i], ends[i]) of `text` for each i, as a fixed-width bytes array."""
    width = max(int((ends - starts).max(initial=0)), 1)
    at = starts[:, None] + np.arange(width)
    inside = at < ends[:, None]
    letters = np.where(inside, text[np.minimum(at, len(text) - 1)], 0).astype(np.uint8)
    return letters.view(f"S{width}").ravel()


def integers(fields):
    return fields.astype(np.int64)


def floats(fields):
    """Numbers of a column that writes NA for none: NaN there."""
    return np.where(fields == b"NA", b"nan", fields).astype(np.float64)
