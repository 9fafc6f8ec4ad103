"""A sample's frame table and its shards: every kept frame in input order, one row each, and a
manifest that cuts the rows into shards of equal work, one embedding job each.

A shard is a run of consecutive frames (consecutive ordinals), cut where the work of the models
the sample's classifier takes (sizing.frame_seconds) reaches its share, so every shard costs its
GPU about the same time. The embedding job orders its own frames by length for packing. One
table rather than a file per shard: a rule's outputs are fixed, while the number of shards
differs between samples; the manifest gives each shard's byte range, so a job reads its shard
alone.
"""

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..planning.sizing import frame_seconds
from .atomic import atomic_open, atomic_path, named_writer
from .damage import DamagedFile
from .tables import tsv_writer

log = logging.getLogger(__name__)

FRAME_COLUMNS = ("frame_id", "nucleotide", "protein")
# a shard's frames, their first ordinal, their reference GPU seconds (sizing.frame_seconds),
# the residues of its longest frame (the embedding job's bound on its batches before it has
# tokenized them), and its byte range in the frame table
MANIFEST_COLUMNS = (
    "shard",
    "frames",
    "first_ordinal",
    "seconds",
    "max_residues",
    "start_byte",
    "end_byte",
)
READ_BYTES = 1 << 24  # of the table read at a time by shard_blocks: about 65,000 frames of reads
_HEADER = ("\t".join(FRAME_COLUMNS) + "\n").encode()


def frame_row(frame_id, nucleotide, protein):
    """One row of the frame table."""
    return f"{frame_id}\t{nucleotide}\t{protein}\n"


def shard_name(index):
    return f"shard_{index:04d}"


@dataclass(frozen=True)
class _Block:
    """Rows added at once to a frame table: where they start, and their frames' count, work
    and longest protein."""

    start: int
    frames: int
    seconds: float
    max_residues: int


class FrameTableWriter:
    """What `frame_table` yields: `add(rows, residues, bases)` appends a block of rows (bytes)
    of frames with those protein and nucleotide lengths."""

    def __init__(self, handle, models):
        self.handle, self.models = handle, models
        self.blocks = []

    def add(self, rows, residues, bases):
        if len(residues):
            seconds = float(frame_seconds(residues, bases, self.models).sum())
            block = _Block(self.handle.tell(), len(residues), seconds, int(np.max(residues)))
            self.blocks.append(block)
        self.handle.write(rows)


@contextmanager
def frame_table(frames_tsv, manifest_tsv, n_shards, models):
    """Yield a FrameTableWriter for `frames_tsv`; once every block is in, cut the frames into
    `n_shards` shards of equal work for `models` and write them to `manifest_tsv`."""
    with atomic_path(frames_tsv) as tmp, named_writer(tmp, frames_tsv) as handle:
        handle.write(_HEADER)
        writer = FrameTableWriter(handle, models)
        yield writer
        handle.flush()
        shards = _shards(tmp, writer.blocks, handle.tell(), n_shards, models)
        ends = [shard.start for shard in shards[1:]] + [handle.tell()]
    with atomic_open(manifest_tsv) as out:
        table = tsv_writer(out)
        table.writerow(MANIFEST_COLUMNS)
        for i, (shard, end) in enumerate(zip(shards, ends, strict=True)):
            work = f"{shard.seconds:.3f}"
            table.writerow(
                (shard_name(i), shard.frames, shard.first, work, shard.longest, shard.start, end)
            )
    log.info(
        "%d frames, %.1f s of GPU work (reference rates) for %s, in %d shards",
        sum(block.frames for block in writer.blocks),
        sum(block.seconds for block in writer.blocks),
        " and ".join(models),
        n_shards,
    )


@dataclass
class _Shard:
    first: int  # ordinal of its first frame
    start: int  # byte of its first row
    frames: int = 0
    seconds: float = 0.0
    longest: int = 0  # residues

    def take(self, frames, seconds, longest):
        self.frames, self.seconds = self.frames + frames, self.seconds + seconds
        self.longest = max(self.longest, longest)


def _shards(table, blocks, size, n_shards, models):
    """The `n_shards` shards of the frames of `blocks` of `table`: shard k starts at the first
    frame whose work's midpoint reaches k/n of the total. A block wholly inside a shard is not
    read again; one where a shard starts has its rows read back, a frame at a time."""
    total = sum(block.seconds for block in blocks)
    targets = [total * k / n_shards for k in range(1, n_shards)]
    shards, ordinal, done = [_Shard(0, len(_HEADER))], 0, 0.0
    for block in blocks:
        if len(shards) < n_shards and done + block.seconds >= targets[len(shards) - 1]:
            sizes, residues, bases = _block_rows(table, block.start, block.frames)
            seconds = frame_seconds(residues, bases, models)
            midpoints = done + np.cumsum(seconds) - seconds / 2
            start = block.start
            for i in range(block.frames):
                while len(shards) < n_shards and midpoints[i] >= targets[len(shards) - 1]:
                    shards.append(_Shard(ordinal + i, start))
                shards[-1].take(1, seconds[i], residues[i])
                start += sizes[i]
        else:
            shards[-1].take(block.frames, block.seconds, block.max_residues)
        ordinal, done = ordinal + block.frames, done + block.seconds
    while len(shards) < n_shards:  # past the last frame: shards of none
        shards.append(_Shard(ordinal, size))
    return shards


def _block_rows(table, start, frames):
    """The byte length, protein and nucleotide length of each of `frames` rows from `start`."""
    with open(table, "rb") as handle:
        handle.seek(start)
        lines = [handle.readline() for _ in range(frames)]
    fields = [line.split(b"\t") for line in lines]
    return (
        [len(line) for line in lines],
        np.array([len(f[2]) - 1 for f in fields], dtype=np.int64),  # less the line break
        np.array([len(f[1]) for f in fields], dtype=np.int64),
    )


def read_shard(frames_tsv, manifest_tsv, name):
    """The frames of one shard in input order: ordinals (int64), ids, nucleotides, proteins, as
    lists (tests, benchmarks; a job reads its shard in blocks, shard_blocks)."""
    columns = ("ordinal", *FRAME_COLUMNS)
    blocks = list(shard_blocks(frames_tsv, manifest_tsv, name, columns))
    ordinals = np.concatenate([np.empty(0, np.int64)] + [block["ordinal"] for block in blocks])
    return ordinals, *([v for block in blocks for v in block[c]] for c in FRAME_COLUMNS)


def shard_entry(frames_tsv, manifest_tsv, name):
    """The manifest's row of shard `name` as {column: text}. DamagedFile if the table or its
    manifest is not whole: the table ends where the manifest's last shard ends."""
    shards = read_manifest(manifest_tsv)
    size, end = os.path.getsize(frames_tsv), int(shards[-1]["end_byte"])
    if size < end:
        raise DamagedFile(
            frames_tsv, f"it holds {size} bytes, but {manifest_tsv} gives its shards {end}"
        )
    if size > end:
        raise DamagedFile(
            manifest_tsv, f"its shards end at byte {end} of {frames_tsv}, which holds {size}"
        )
    entry = next((row for row in shards if row["shard"] == name), None)
    if entry is None:
        raise ValueError(f"{manifest_tsv} lists no shard {name}")
    return entry


def shard_blocks(frames_tsv, manifest_tsv, name, columns=("ordinal", *FRAME_COLUMNS)):
    """The frames of shard `name` in input order, in blocks of the rows of READ_BYTES of the
    table at a time: per block, {column: its values} for `columns` (FRAME_COLUMNS, and
    `ordinal`, which the table holds by position: an int64 array), the rest lists of text. So
    a job holds only the columns it needs, not the whole shard's text. DamagedFile as
    shard_entry says, or if the table holds more or fewer of the shard's frames than the
    manifest lists, or a row that is not whole."""
    entry = shard_entry(frames_tsv, manifest_tsv, name)
    at = {column: FRAME_COLUMNS.index(column) for column in columns if column != "ordinal"}
    start, end = int(entry["start_byte"]), int(entry["end_byte"])
    frames, rest = 0, b""
    with open(frames_tsv, "rb") as table:
        table.seek(start)
        while start < end:
            chunk = table.read(min(READ_BYTES, end - start))
            if not chunk:
                raise DamagedFile(frames_tsv, f"it ends at byte {start}, inside {name}")
            start += len(chunk)
            text = rest + chunk
            cut = text.rfind(b"\n") + 1 if start < end else len(text)
            rows = [line.split("\t") for line in text[:cut].decode().splitlines()]
            if any(len(row) != len(FRAME_COLUMNS) for row in rows):
                raise DamagedFile(frames_tsv, f"a row of {name} is not whole")
            rest = text[cut:]
            block = {column: [row[i] for row in rows] for column, i in at.items()}
            if "ordinal" in columns:
                first = int(entry["first_ordinal"]) + frames
                block["ordinal"] = np.arange(first, first + len(rows), dtype=np.int64)
            frames += len(rows)
            yield block
    if frames != int(entry["frames"]):
        raise DamagedFile(
            frames_tsv,
            f"it holds {frames} frames of {name}, but {manifest_tsv} lists {entry['frames']}",
        )


def read_manifest(manifest_tsv):
    """The manifest's rows as {column: text}; DamagedFile unless it holds its header and at
    least one row, every row whole."""
    with open(manifest_tsv, encoding="utf-8", newline="") as handle:
        lines = handle.read().split("\n")
    header, rows, last = lines[0], [line.split("\t") for line in lines[1:-1]], lines[-1]
    if (
        header != "\t".join(MANIFEST_COLUMNS)
        or last != ""  # the file ends with a newline
        or not rows
        or any(len(row) != len(MANIFEST_COLUMNS) for row in rows)
    ):
        raise DamagedFile(manifest_tsv, "it is cut short: a row or the header is incomplete")
    return [dict(zip(MANIFEST_COLUMNS, row, strict=True)) for row in rows]
