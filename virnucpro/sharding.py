"""Cut a sample's frames into shards of equal ESM-2 work, one embedding job each.

All frames are sorted by length once, globally, and the sorted list is cut into contiguous
runs of equal token count: every shard then holds frames of similar length (batches pack
densely) and costs its GPU about the same time. ESM-2 tokens are the measure because ESM-2 is
more than 95% of the work (SPEC §6).
"""

import logging
import os
from contextlib import ExitStack

import numpy as np

from .atomic import atomic_open, atomic_path
from .damage import DamagedFile
from .fasta import read_unwrapped
from .tables import tsv_writer

log = logging.getLogger(__name__)

SHARD_COLUMNS = ("ordinal", "frame_id", "nucleotide", "protein")
MANIFEST_COLUMNS = (
    "shard",
    "frames",
    "esm2_tokens",
    "min_residues",
    "max_residues",
    "start_byte",
    "end_byte",
)
_OPEN_AT_ONCE = 200  # shards written per pass over the frames (a handle each), under any fd limit
READ_BYTES = 1 << 24  # of the table read at a time: about 65,000 frames of reads


def esm2_tokens(residues):
    """Tokens ESM-2 computes for proteins of `residues` residues: <cls>, every residue (the
    original attends over whole proteins), <eos>; as models.esm2.tokenize encodes them."""
    return np.asarray(residues, dtype=np.int64) + 2


def assign_shards(residues, n_shards):
    """Shard index of each frame: sort by length (longest first, ties by position) and cut the
    sorted list into `n_shards` contiguous runs of about equal token count."""
    residues = np.asarray(residues, dtype=np.int64)
    order = np.lexsort((np.arange(len(residues)), -residues))
    tokens = esm2_tokens(residues[order])
    midpoints = np.cumsum(tokens) - tokens / 2
    total = max(int(tokens.sum()), 1)
    shard_of_sorted = np.minimum((midpoints * n_shards / total).astype(np.int64), n_shards - 1)
    shard = np.empty(len(residues), dtype=np.int64)
    shard[order] = shard_of_sorted
    return shard


def shard_frames(nucleotide_fa, protein_faa, n_shards, frames_tsv, manifest_tsv):
    """Write every frame into one table, grouped by shard (each shard's rows in input order),
    and a manifest giving each shard's size and its byte range in the table, so that an
    embedding job reads its shard alone. One table rather than a file per shard: a rule's
    outputs are fixed, while the number of shards differs between samples."""
    residues, row_bytes = _frame_sizes(nucleotide_fa, protein_faa)
    shard = assign_shards(residues, n_shards)
    header = ("\t".join(SHARD_COLUMNS) + "\n").encode()
    sizes = np.bincount(shard, weights=row_bytes, minlength=n_shards).astype(np.int64)
    ends = len(header) + np.cumsum(sizes)
    starts = ends - sizes
    with atomic_path(frames_tsv) as tmp:
        with open(tmp, "wb") as table:
            table.write(header)
            table.truncate(ends[-1])
        for first in range(0, n_shards, _OPEN_AT_ONCE):
            group = range(first, min(first + _OPEN_AT_ONCE, n_shards))
            _write_group(
                nucleotide_fa, protein_faa, shard, tmp, {i: (starts[i], ends[i]) for i in group}
            )
    with atomic_open(manifest_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(MANIFEST_COLUMNS)
        for i in range(n_shards):
            mine = residues[shard == i]
            table.writerow(
                (
                    shard_name(i),
                    len(mine),
                    int(esm2_tokens(mine).sum()),
                    int(mine.min()) if len(mine) else 0,
                    int(mine.max()) if len(mine) else 0,
                    starts[i],
                    ends[i],
                )
            )
    log.info(
        "%d frames, %d ESM-2 tokens, in %d shards",
        len(residues),
        int(esm2_tokens(residues).sum()),
        n_shards,
    )


def shard_name(index):
    return f"shard_{index:04d}"


def _frame_pairs(nucleotide_fa, protein_faa):
    """(ordinal, frame id, nucleotides, protein) of every frame, the two files checked to agree."""
    with (
        open(nucleotide_fa, encoding="utf-8") as nucleotides,
        open(protein_faa, encoding="utf-8") as proteins,
    ):
        pairs = zip(read_unwrapped(nucleotides), read_unwrapped(proteins), strict=True)
        for ordinal, ((frame_id, nucleotide), (protein_id, protein)) in enumerate(pairs):
            if frame_id != protein_id:
                raise ValueError(f"{nucleotide_fa} and {protein_faa} disagree at {frame_id}")
            yield ordinal, frame_id, nucleotide, protein


def _row(ordinal, frame_id, nucleotide, protein):
    return f"{ordinal}\t{frame_id}\t{nucleotide}\t{protein}\n".encode()


def _frame_sizes(nucleotide_fa, protein_faa):
    """Residues of each frame and the bytes of its row in the table."""
    residues, row_bytes = [], []
    for ordinal, frame_id, nucleotide, protein in _frame_pairs(nucleotide_fa, protein_faa):
        residues.append(len(protein))
        row_bytes.append(len(_row(ordinal, frame_id, nucleotide, protein)))
    return np.array(residues, dtype=np.int64), np.array(row_bytes, dtype=np.int64)


def _write_group(nucleotide_fa, protein_faa, shard, table, ranges):
    """Write the rows of the shards in `ranges` {shard: (start, end)}, each through its own
    handle placed at its shard's first byte, in one pass over the frames."""
    with ExitStack() as stack:
        handles = {}
        for i, (start, _) in ranges.items():
            handles[i] = stack.enter_context(open(table, "r+b"))
            handles[i].seek(start)
        for ordinal, *frame in _frame_pairs(nucleotide_fa, protein_faa):
            handle = handles.get(shard[ordinal])
            if handle is not None:
                handle.write(_row(ordinal, *frame))
        for i, (_, end) in ranges.items():
            if handles[i].tell() != end:
                raise RuntimeError(
                    f"{table}: shard {i} ends at byte {handles[i].tell()}, not {end}"
                )


def read_shard(frames_tsv, manifest_tsv, name):
    """The frames of one shard in input order: ordinals (int64), ids, nucleotides, proteins, as
    lists (tests, benchmarks; a job reads its shard in blocks, shard_blocks)."""
    blocks = list(shard_blocks(frames_tsv, manifest_tsv, name))
    ordinals = np.concatenate([np.empty(0, np.int64)] + [block["ordinal"] for block in blocks])
    return ordinals, *([v for block in blocks for v in block[c]] for c in SHARD_COLUMNS[1:])


def shard_entry(frames_tsv, manifest_tsv, name):
    """The manifest's row of shard `name` as {column: text}. DamagedFile if the table or its
    manifest is not whole: the table ends where the manifest's last shard ends."""
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
    return entry


def shard_blocks(frames_tsv, manifest_tsv, name, columns=SHARD_COLUMNS):
    """The frames of shard `name` in input order, in blocks of the rows of READ_BYTES of the
    table at a time: per block, {column: its values} for `columns`, the ordinals an int64
    array, the rest lists of text. So a job holds only the columns it needs, not the whole
    shard's text. DamagedFile as shard_entry says, or if the table holds more or fewer of the
    shard's frames than the manifest lists."""
    entry = shard_entry(frames_tsv, manifest_tsv, name)
    at = [SHARD_COLUMNS.index(column) for column in columns]
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
            rest = text[cut:]
            frames += len(rows)
            block = {
                column: [row[i] for row in rows] for column, i in zip(columns, at, strict=True)
            }
            if "ordinal" in block:
                block["ordinal"] = np.array(block["ordinal"], dtype=np.int64)
            yield block
    if frames != int(entry["frames"]):
        raise DamagedFile(
            frames_tsv,
            f"it holds {frames} frames of {name}, but {manifest_tsv} lists {entry['frames']}",
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
