"""A sample's parts: blocks of whole records in input order (stages.prepare), the unit of the
results stages' work. Where each part's rows lie, so that a worker reads its part alone by
seeking to it: prepare's parts.tsv (io.prepared.PART_COLUMNS: its rows of the prepare tables,
its records in the input's text), read here and checked against the tables, and the
aggregation's PartRows (its rows of records.tsv and regions.tsv), which the viral FASTA of the
same job takes."""

import os
from collections import namedtuple

from ..io.damage import DamagedFile
from ..io.prepared import PART_COLUMNS

Part = namedtuple("Part", PART_COLUMNS)  # byte ranges are [start, end)
PartRows = namedtuple(
    "PartRows", ("part", "records_start", "records_end", "regions_start", "regions_end")
)


def read_parts(parts_tsv):
    """The Parts of prepare's table; DamagedFile unless it is whole and each part starts where
    the one before it ends (its first frame, its text, its rows)."""
    parts = _read_ints(parts_tsv, Part)
    expected = {"first_ordinal": 0, "text_start": 0}
    for part in parts:
        found = {name: getattr(part, name) for name in expected}
        if found != expected:
            raise DamagedFile(parts_tsv, f"part {part.part} is {found}, where {expected} follow")
        expected = {
            "first_ordinal": part.first_ordinal + part.frames,
            "text_start": part.text_end,
            "records_start": part.records_end,
            "chunks_start": part.chunks_end,
        }
    return parts


def check_part_rows(rows, parts, records_tsv, regions_tsv):
    """DamagedFile unless the aggregation's PartRows, one for each of `parts`, follow one
    another and each table ends where its last part ends."""
    if len(rows) != len(parts):
        raise ValueError(f"rows of {len(rows)} parts for a sample of {len(parts)}")
    check_ranges(rows, records_tsv, "records")
    check_ranges(rows, regions_tsv, "regions")


def check_ranges(rows, table, prefix, index_tsv=None):
    """DamagedFile unless the ranges `prefix`_start/_end of the `rows` of `index_tsv` (None:
    of the aggregation, which wrote `table`) follow one another from the end of `table`'s header
    to its end. A table that runs on past the last row names `index_tsv`: a file is cut short,
    never lengthened, and one cut at a line end holds whole rows, fewer of them."""
    source = index_tsv or "the aggregation"
    start, end = f"{prefix}_start", f"{prefix}_end"
    at = _header_bytes(table)
    for row in rows:
        if getattr(row, start) != at:
            raise DamagedFile(
                table, f"{source} gives rows from byte {getattr(row, start)}, not {at}"
            )
        at = getattr(row, end)
    size = os.path.getsize(table)
    if size > at and index_tsv is not None:
        raise DamagedFile(index_tsv, f"its rows of {table} end at byte {at}, which holds {size}")
    if size != at:
        raise DamagedFile(table, f"it holds {size} bytes, but {source} gives its rows {at}")


def part_rows(sizes, records_header, regions_header):
    """The PartRows of the aggregation's tables: `sizes` gives the bytes of each part's rows
    of records.tsv and regions.tsv, `records_header` and `regions_header` the bytes of those
    tables' headers."""
    rows, records_at, regions_at = [], records_header, regions_header
    for number, (records, regions) in enumerate(sizes):
        rows.append(
            PartRows(number, records_at, records_at + records, regions_at, regions_at + regions)
        )
        records_at += records
        regions_at += regions
    return rows


def _read_ints(path, row_type):
    """The rows of a table of integers whose header is row_type's fields, numbered from 0;
    DamagedFile unless it is so, every row whole."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    try:
        if lines[0] != "\t".join(row_type._fields) or lines[-1] != "":
            raise ValueError("the header or the last row is incomplete")
        rows = [row_type(*map(int, line.split("\t"))) for line in lines[1:-1]]
        if [row.part for row in rows] != list(range(len(rows))):
            raise ValueError("its parts are not numbered 0, 1, ...")
    except (ValueError, TypeError) as error:
        raise DamagedFile(path, f"it is not a table of {row_type._fields} ({error})") from None
    return rows


def _header_bytes(table):
    with open(table, "rb") as handle:
        return len(handle.readline())


def read_range(path, start, end):
    """Bytes [start, end) of a file."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    if len(data) != end - start:
        raise DamagedFile(path, f"it ends before byte {end}")
    return data
