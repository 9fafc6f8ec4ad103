"""Some columns of a large table (tables.tsv_writer's dialect) as numpy arrays, a block of whole
rows at a time, for the stages that read a few columns of tens of millions of rows.

numpy rather than the csv module: the fields are found at the positions of the block's tabs
and line breaks, and read in a few vectorized passes, where csv makes Python objects of every
field of every row. This holds for tables whose fields hold no tab
or line break, which tsv_writer would quote: the workflow's are such (ids are FASTA header
words, the rest are numbers, calls and reasons)."""

from dataclasses import dataclass

import numpy as np

from .tables import tsv_reader

BLOCK_BYTES = 1 << 22  # of text; a block's arrays take several times that
_TAB, _NEWLINE, _ZERO, _POINT = ord("\t"), ord("\n"), ord("0"), ord(".")


@dataclass(frozen=True)
class Block:
    """Whole rows of a table: their bytes, the offset of each row in the file, and where each
    chosen column's field starts and ends in the bytes ([start, end))."""

    text: np.ndarray  # uint8
    offsets: np.ndarray
    starts: dict
    ends: dict

    def __len__(self):
        return len(self.offsets)

    def fields(self, name):
        """The column's fields as a fixed-width bytes ('S') array."""
        return self._fields(self.starts[name], self.ends[name])

    def _fields(self, starts, ends):
        width = max(int((ends - starts).max(initial=0)), 1)
        at = starts[:, None] + np.arange(width)
        letters = np.where(at < ends[:, None], self.text[np.minimum(at, len(self.text) - 1)], 0)
        return letters.astype(np.uint8).view(f"S{width}").ravel()

    def integers(self, name):
        """The column's non-negative integers, digit by digit from the right of each field:
        numpy's own parsing of text is several times slower."""
        starts, ends = self.starts[name], self.ends[name]
        values = np.zeros(len(starts), dtype=np.int64)
        for back in range(int((ends - starts).max(initial=0)), 0, -1):
            at = ends - back
            inside = at >= starts
            digits = self.text[np.where(inside, at, ends - 1)].astype(np.int64) - _ZERO
            if np.any(inside & ((digits < 0) | (digits > 9))):
                raise ValueError(f"a field of column {name} is not a whole number")
            values = np.where(inside, values * 10 + digits, values)
        return values

    def floats(self, name):
        """The column's numbers as float() reads them, NaN where it writes NA for none.

        A field of digits and a point is read digit by digit into one integer m and divided by
        10**k, k its digits after the point: m and 10**k are exact doubles (fewer than 16
        digits, k < 23), so the one division is correctly rounded, as float() of the text is.
        numpy's own parsing, several times slower, reads the rest (exponents, NA, nan)."""
        starts, ends = self.starts[name], self.ends[name]
        mantissa = np.zeros(len(starts), dtype=np.int64)
        decimals, digits = np.zeros_like(mantissa), np.zeros_like(mantissa)
        point, plain = np.zeros(len(starts), dtype=bool), ends > starts
        for offset in range(int((ends - starts).max(initial=0))):
            at = starts + offset
            inside = at < ends
            letter = self.text[np.where(inside, at, starts)].astype(np.int64)
            digit = inside & (letter >= _ZERO) & (letter <= _ZERO + 9)
            dot = inside & (letter == _POINT)
            plain &= ~inside | digit | (dot & ~point)
            mantissa = np.where(digit, mantissa * 10 + letter - _ZERO, mantissa)
            digits += digit
            decimals += digit & point
            point |= dot
        plain &= (digits < 16) & (decimals < 23)
        values = mantissa / 10.0 ** np.where(plain, decimals, 0)
        rest = self._fields(starts[~plain], ends[~plain])
        values[~plain] = np.where(rest == b"NA", b"nan", rest).astype(np.float64)
        return values

    def codes(self, name, values):
        """The index in `values` of each field of the column; ValueError where one is none."""
        starts, lengths = self.starts[name], self.ends[name] - self.starts[name]
        codes = np.full(len(starts), -1, dtype=np.int8)
        for code, value in enumerate(values):
            value = value.encode()
            match = lengths == len(value)
            for i, letter in enumerate(value):  # the few letters, over all rows at once
                match &= self.text[np.minimum(starts + i, len(self.text) - 1)] == letter
            codes[match] = code
        if np.any(codes < 0):
            raise ValueError(f"a field of column {name} is none of {values}")
        return codes


def column_blocks(path, names):
    """Yield Blocks of the whole rows of the table `path`, with the fields of its columns
    `names`. ValueError where a row has other than its header's number of fields."""
    with open(path, "rb") as handle:
        header = handle.readline().rstrip(b"\n").decode().split("\t")
        picked = {name: header.index(name) for name in names}
        offset, rest = handle.tell(), b""
        while data := handle.read(BLOCK_BYTES):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                yield _block(path, data[:cut], offset, len(header), picked)
            offset, rest = offset + cut, data[cut:]
    if rest:
        raise ValueError(f"{path}: its last row is cut short")


def _block(path, data, offset, width, picked):
    text = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero((text == _TAB) | (text == _NEWLINE))  # of every field
    if len(ends) % width or np.any(text[ends[width - 1 :: width]] != _NEWLINE):
        raise ValueError(f"{path}: a row does not hold the {width} fields of its header")
    ends = ends.reshape(-1, width)
    row_starts = np.concatenate([[0], ends[:-1, -1] + 1])
    starts = {name: row_starts if i == 0 else ends[:, i - 1] + 1 for name, i in picked.items()}
    return Block(
        text, offset + row_starts, starts, {name: ends[:, i] for name, i in picked.items()}
    )


def rows_at(path, offsets):
    """The rows of the table `path` that start at `offsets` (Block.offsets), as {column: field}
    dicts, in the order of `offsets`."""
    with open(path, "rb") as handle:
        header = next(tsv_reader([handle.readline().decode()]))
        rows = []
        for offset in offsets:
            handle.seek(int(offset))
            row = next(tsv_reader([handle.readline().decode()]))
            rows.append(dict(zip(header, row, strict=True)))
    return rows
