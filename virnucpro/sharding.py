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
from collections import deque
from contextlib import contextmanager

import numpy as np

from .atomic import atomic_open, atomic_path
from .damage import DamagedFile
from .sizing import frame_seconds
from .tables import tsv_writer

log = logging.getLogger(__name__)

FRAME_COLUMNS = ("frame_id", "nucleotide", "protein")
MANIFEST_COLUMNS = ("shard", "frames", "first_ordinal", "seconds", "start_byte", "end_byte")
_HEADER = ("\t".join(FRAME_COLUMNS) + "\n").encode()


def frame_row(frame_id, nucleotide, protein):
    """One row of the frame table."""
    return f"{frame_id}\t{nucleotide}\t{protein}\n"


def shard_name(index):
    return f"shard_{index:04d}"


class FrameTableWriter:
    """What `frame_table` yields: `add(rows, residues, bases)` appends a block of rows (bytes)
    of frames with those protein and nucleotide lengths."""

    def __init__(self, handle, models):
        self.handle, self.models = handle, models
        self.blocks = []  # (first byte, frames, seconds) of each block

    def add(self, rows, residues, bases):
        if len(residues):
            seconds = float(frame_seconds(residues, bases, self.models).sum())
            self.blocks.append((self.handle.tell(), len(residues), seconds))
        self.handle.write(rows)


@contextmanager
def frame_table(frames_tsv, manifest_tsv, n_shards, models):
    """Yield a FrameTableWriter for `frames_tsv`; once every block is in, cut the frames into
    `n_shards` shards of equal work for `models` and write them to `manifest_tsv`."""
    with atomic_path(frames_tsv) as tmp, open(tmp, "wb") as handle:
        handle.write(_HEADER)
        writer = FrameTableWriter(handle, models)
        yield writer
        handle.flush()
        cuts = _cuts(tmp, writer.blocks, handle.tell(), n_shards, models)
    frames = sum(n for _, n, _ in writer.blocks)
    with atomic_open(manifest_tsv) as out:
        table = tsv_writer(out)
        table.writerow(MANIFEST_COLUMNS)
        for i, ((ordinal, start, done), (following, end, reached)) in enumerate(
            zip(cuts, cuts[1:], strict=False)
        ):
            work = f"{reached - done:.3f}"
            table.writerow((shard_name(i), following - ordinal, ordinal, work, start, end))
    log.info(
        "%d frames, %.1f s of GPU work (reference rates) for %s, in %d shards",
        frames,
        cuts[-1][2],
        " and ".join(models),
        n_shards,
    )


def _cuts(table, blocks, size, n_shards, models):
    """(first ordinal, first byte, work before it) of each shard, and the same past the last
    frame: shard k starts at the first frame whose work's midpoint reaches k/n of the total."""
    total = sum(seconds for _, _, seconds in blocks)
    past_last = (sum(frames for _, frames, _ in blocks), size, total)
    cuts, ordinal, done, remaining = [(0, len(_HEADER), 0.0)], 0, 0.0, deque(blocks)
    for k in range(1, n_shards):
        target = total * k / n_shards
        while remaining and done + remaining[0][2] < target:
            ordinal, done = ordinal + remaining[0][1], done + remaining[0][2]
            remaining.popleft()
        if not remaining:
            cuts.append(past_last)
            continue
        start, frames, _ = remaining[0]
        rows, residues, bases = _block_rows(table, start, frames)
        seconds = frame_seconds(residues, bases, models)
        before = np.cumsum(seconds) - seconds  # the work before each frame of the block
        inside = int(np.count_nonzero(done + before + seconds / 2 < target))
        cuts.append((ordinal + inside, start + sum(rows[:inside]), done + seconds[:inside].sum()))
    cuts.append(past_last)
    return cuts


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
    """The frames of one shard in input order: ordinals (int64), ids, nucleotides, proteins.
    DamagedFile if the table or its manifest is not whole: the table ends where the manifest's
    last shard ends."""
    shards = _read_manifest(manifest_tsv)
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
    with open(frames_tsv, "rb") as table:
        table.seek(int(entry["start_byte"]))
        text = table.read(int(entry["end_byte"]) - int(entry["start_byte"])).decode()
    rows = [line.split("\t") for line in text.splitlines()]
    if len(rows) != int(entry["frames"]) or any(len(row) != len(FRAME_COLUMNS) for row in rows):
        raise DamagedFile(
            frames_tsv,
            f"it holds {len(rows)} frames of {name}, but {manifest_tsv} lists {entry['frames']}",
        )
    first = int(entry["first_ordinal"])
    return (
        np.arange(first, first + len(rows), dtype=np.int64),
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )


def _read_manifest(manifest_tsv):
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
