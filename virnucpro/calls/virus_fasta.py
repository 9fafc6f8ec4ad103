"""The viral sequences of a sample (its input FASTA or FASTQ) as two FASTA files, as geNomad
keeps viruses and proviruses apart: every record called virus, whole, in one, and every viral
region in the other, named `<record>|region_<start>_<end>` (1-based, inclusive) so that it
traces back to its record and place. Each file has a record for each row of its table (the
records called virus in records.tsv, the rows of regions.tsv), so counting its headers counts
them.

Part by part (parts.py) over worker processes: each reads its part's records from the input
beside their rows of records.tsv and regions.tsv and formats its share of the output, which the
main process writes in part order. A plain input is read by the workers at the part's offset; a
compressed one is decompressed once, in order, by the main process, which hands each part's
text to its worker."""

import functools
import io
import itertools
import operator
from collections import namedtuple
from dataclasses import dataclass

from xopen import xopen

from ..io.atomic import atomic_open
from ..io.compressed import format_of
from ..io.fasta import Block, block_records, is_fastq, write_wrapped
from ..io.tables import tsv_reader
from ..runtime.parallel import ordered_map
from .parts import check_part_rows, read_parts, read_range

# the columns read of records.tsv and regions.tsv
_RecordRow = namedtuple("_RecordRow", ("record_id", "length", "best_virus_score", "call"))
_RegionRow = namedtuple(
    "_RegionRow",
    ("region_id", "record_id", "start", "end", "mean_virus_score", "best_virus_score"),
)
_Tables = namedtuple("_Tables", ("fasta", "records", "regions"))  # the paths a worker reads


@dataclass(frozen=True)
class _Task:
    """A part: its records' text (None: to be read from the plain input), the numbers of its
    first record and line in the input, and where its rows lie in records.tsv and regions.tsv
    (parts.PartRows)."""

    text: bytes | None
    text_start: int
    text_end: int
    first_record: int
    first_line: int
    rows: tuple


def write_virus_fasta(
    fasta, parts_tsv, records_tsv, regions_tsv, rows, out_records, out_regions, workers=1
):
    """Read the sample's input again beside its records and regions tables (all in input
    order), and write the records called virus to `out_records` and the regions to
    `out_regions`: `parts_tsv`, prepare's parts table, gives each part's records in the input;
    `rows`, the aggregation's parts.PartRows, their rows in the two tables. `workers` processes
    do the work; the output does not depend on their number."""
    parts = read_parts(parts_tsv)
    check_part_rows(rows, parts, records_tsv, regions_tsv)
    tables = _Tables(str(fasta), str(records_tsv), str(regions_tsv))
    work = functools.partial(_part_fasta, tables, _columns(records_tsv), _columns(regions_tsv))
    with atomic_open(out_records, "wb") as records, atomic_open(out_regions, "wb") as regions:
        for whole, region_text in ordered_map(
            work, _tasks(fasta, parts, rows), min(workers, len(parts))
        ):
            records.write(whole)
            regions.write(region_text)


def _tasks(fasta, parts, rows):
    fmt = format_of(fasta)
    # threads=0 decompresses in this process, as fasta.read_blocks does
    with open(fasta, "rb") if fmt is None else xopen(fasta, "rb", format=fmt, threads=0) as text:
        first_record = 1
        for part, row in zip(parts, rows, strict=True):
            yield _Task(
                None if fmt is None else text.read(part.text_end - part.text_start),
                part.text_start,
                part.text_end,
                first_record,
                part.first_line,
                row,
            )
            first_record += part.records


def _columns(table):
    """{column name: index} of a table's header."""
    with open(table, encoding="utf-8", newline="") as handle:
        return {name: i for i, name in enumerate(next(tsv_reader(handle), []))}


def _part_fasta(tables, record_columns, region_columns, task):
    """The bytes of the two outputs for one part (a worker's task)."""
    fasta = tables.fasta
    text = task.text if task.text is not None else read_range(fasta, task.text_start, task.text_end)
    # a part starts with a record ('>' or '@'), or the file's start: the preparing stage read
    # the whole input as one format
    block = Block(text, task.text_start, task.first_record, task.first_line, is_fastq(text))
    records = block_records(block, fasta)
    at = task.rows
    rows = _rows(
        read_range(tables.records, at.records_start, at.records_end), record_columns, _RecordRow
    )
    regions = _rows(
        read_range(tables.regions, at.regions_start, at.regions_end), region_columns, _RegionRow
    )
    whole, inside = io.StringIO(), io.StringIO()
    pending = 0  # the next region
    for record, row in itertools.zip_longest(records, rows):
        if record is None or row is None or record.id != row.record_id:
            raise ValueError(f"{tables.records} does not list the records of {fasta} in order")
        if row.call == "virus":
            header = f"{row.record_id} length={row.length} best_virus_score={row.best_virus_score}"
            write_wrapped(whole, header, record.sequence)
        while pending < len(regions) and regions[pending].record_id == record.id:
            region = regions[pending]
            header = (
                f"{region.region_id} record_length={row.length} "
                f"mean_virus_score={region.mean_virus_score} "
                f"best_virus_score={region.best_virus_score}"
            )
            write_wrapped(inside, header, record.sequence[int(region.start) - 1 : int(region.end)])
            pending += 1
    if pending < len(regions):
        raise ValueError(
            f"{tables.regions} names {regions[pending].record_id}, which is not in order in {fasta}"
        )
    return whole.getvalue().encode(), inside.getvalue().encode()


def _rows(data, columns, row_type):
    """A table's rows (bytes) as `row_type`, of the columns of its fields; `columns`, the
    table's {column: index}."""
    picked = operator.itemgetter(*(columns[name] for name in row_type._fields))
    lines = io.StringIO(data.decode(), newline="")
    return [row_type._make(picked(row)) for row in tsv_reader(lines)]
