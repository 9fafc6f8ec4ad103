"""The aggregation of one part of a sample (a worker's task): its records' and chunks' rows
joined to their frames' scores, each chunk and record called, the viral regions of its long
records found, and each output's rows returned as text for the main process to write in part
order.

Scores stay the float32 text the classifier's table held in the original: float() of that text
orders as the float32 values do, and the text is written unchanged; comparisons, means and
regions take float() of it, as they always did."""

import io
import math
from collections import Counter
from dataclasses import dataclass
from operator import attrgetter
from statistics import fmean

import numpy as np

from ..io.damage import DamagedFile
from ..io.prepared import CHUNK_FRAME_COLUMNS, INPUT_RECORD_COLUMNS
from ..io.tables import tsv_reader, tsv_writer
from .calibration import Calibration
from .calling import ORIGINAL_RULE, CallRule, covered_bases
from .parts import read_range
from .regions import RegionSettings, viral_segments

CHUNK_COLUMNS = (
    "chunk_id",
    "record_id",
    "start",
    "end",
    "length",
    "frames",
    "max_score1",
    "max_score2",
    "is_virus",
    "reason",
)
RECORD_COLUMNS = (
    "record_id",
    "length",
    "chunks",
    "chunks_scored",
    "chunks_virus",
    "fraction_virus",
    "virus_bases",
    "best_others_score",
    "best_virus_score",
    "mean_chunk_virus_score",
    "virus_probability",
    "estimated_fdr",
    "regions",
    "call",
    "reason",
)
_BEST, _PROBABILITY, _FDR, _CALL = map(
    RECORD_COLUMNS.index, ("best_virus_score", "virus_probability", "estimated_fdr", "call")
)
REGION_COLUMNS = (
    "region_id",
    "record_id",
    "start",
    "end",
    "length",
    "first_chunk",
    "last_chunk",
    "chunks",
    "mean_virus_score",
    "best_virus_score",
)
# the prepare tables' columns read here
_RECORD_ID, _LENGTH, _CHUNKS, _RECORD_REASON = map(
    INPUT_RECORD_COLUMNS.index, ("record_id", "length", "chunks", "reason")
)
_CHUNK_ID, _START, _END, _FRAMES, _CHUNK_REASON = map(
    CHUNK_FRAME_COLUMNS.index, ("chunk_id", "start", "end", "frames", "reason")
)


@dataclass(frozen=True)
class Calling:
    """What every part is called with: a calling.CallRule, a regions.RegionSettings and the
    classifier's calibration.Calibration (None where it has none)."""

    rule: CallRule
    regions: RegionSettings
    calibration: Calibration | None


@dataclass(frozen=True)
class PartTask:
    """A part (parts.Part), the prepare tables its rows are read from, and its frames' scores:
    float32 [frames, 2] (others, virus) in ordinal order."""

    part: tuple
    records_tsv: str
    chunks_tsv: str
    scores: np.ndarray


@dataclass(frozen=True)
class PartCalls:
    """What a part adds to each output (UTF-8 text), and to the sample's counts.

    `highest`: a line `chunk_id<TAB>True|False` for each scored chunk, in input order, the id
    as it is (not quoted as a table quotes it); `quoted`: whether some id here holds a '"',
    which a table quotes. `records` holds the records' rows with estimated_fdr NA (see
    rank_records); `probabilities` and `called_virus` give each record's virus probability (NaN
    where unscored or uncalibrated) and whether it is called virus."""

    predictions: bytes
    highest: bytes
    quoted: bool
    records: bytes
    chunks: bytes
    regions: bytes
    totals: Counter
    probabilities: np.ndarray
    called_virus: np.ndarray


@dataclass(frozen=True)
class _Scored:
    """The part's chunks with frames, in order, as columns: id, span, the text of its best
    others and virus scores (the best frame's each), their values, and its call."""

    ids: list
    starts: list
    ends: list
    others: list
    virus: list
    others_scores: list
    virus_scores: list
    is_virus: list

    def chunk(self, k):
        return _ScoredChunk(
            self.ids[k],
            self.starts[k],
            self.ends[k],
            self.others[k],
            self.virus[k],
            self.others_scores[k],
            self.virus_scores[k],
            self.is_virus[k],
        )


@dataclass(slots=True)
class _ScoredChunk:
    """A chunk with frames: where it is, its best scores (text and value) and its call."""

    id: str
    start: int
    end: int
    others: str
    virus: str
    others_score: float
    virus_score: float
    is_virus: bool


def call_part(calling, task):
    """The PartCalls of one PartTask.

    Per-frame and per-chunk work runs on the part's columns at once (numpy), the rest in a loop
    over records: a loop over every frame and chunk was most of the aggregation's time."""
    part, rule = task.part, calling.rule
    records = _read_rows(task.records_tsv, part.records_start, part.records_end)
    chunk_data = read_range(task.chunks_tsv, part.chunks_start, part.chunks_end)
    chunks = _parse_rows(task.chunks_tsv, chunk_data, part.chunks_start)
    chunk_counts = _check_counts(task, records, chunks)
    frames = [chunk[_FRAMES].split(",") if chunk[_FRAMES] else [] for chunk in chunks]
    frame_counts = np.fromiter(map(len, frames), dtype=np.int64, count=len(chunks))
    scores = task.scores
    if frame_counts.sum() != part.frames or len(scores) != part.frames:
        raise DamagedFile(
            task.chunks_tsv,
            f"its rows of part {part.part} list {frame_counts.sum()} frames, the part "
            f"{part.frames} and the shards {len(scores)}",
        )
    texts = (float32_texts(scores[:, 0]), float32_texts(scores[:, 1]))
    scored = _scored_chunks(chunks, frame_counts, scores, texts, rule)
    # the original's table keeps the original's rule whatever the config says
    original = ORIGINAL_RULE.chunk_is_virus(
        np.array(scored.others_scores), np.array(scored.virus_scores)
    )
    record_rows, region_rows = _record_rows(
        records, chunks, chunk_counts, frame_counts > 0, scored, rule, calling.regions
    )
    probabilities = _probabilities(calling.calibration, record_rows)
    calls = Counter(f"call_{row[_CALL]}" for row in record_rows)
    return PartCalls(
        predictions=_predictions(chunks, frames, scores, texts).encode(),
        highest="".join(
            f"{chunk_id}\t{call}\n"
            for chunk_id, call in zip(scored.ids, original.tolist(), strict=True)
        ).encode(),
        quoted=b'"' in chunk_data,
        records=_records_text(record_rows, probabilities, calling.calibration).encode(),
        chunks=_chunks_text(chunks, frame_counts > 0, scored).encode(),
        regions=_table_text(region_rows).encode(),
        totals=calls
        + Counter(
            records=len(records),
            chunks=len(chunks),
            chunks_scored=len(scored.ids),
            regions=len(region_rows),
        ),
        probabilities=probabilities,
        called_virus=np.array([row[_CALL] == "virus" for row in record_rows], dtype=bool),
    )


def float32_texts(values):
    """Float32 scores as the original printed them: str() of a numpy float32 (shortest repr).
    A loop of str(): numpy's own astype(str) gives the same text, but is slower."""
    return list(map(str, np.asarray(values, dtype=np.float32)))


def rank_records(rows, rates):
    """Record rows (bytes, as PartCalls.records) with each one's estimated FDR, from `rates`,
    which needs the probabilities of all the sample's records."""
    out = io.StringIO()
    table = tsv_writer(out)
    parsed = tsv_reader(io.StringIO(rows.decode(), newline=""))
    for row, rate in zip(parsed, rates, strict=True):
        row[_FDR] = _exact(rate)
        table.writerow(row)
    return out.getvalue().encode()


def _read_rows(path, start, end):
    return _parse_rows(path, read_range(path, start, end), start)


def _parse_rows(path, data, start):
    """The rows (lists of fields) of a table's bytes from `start`, which are whole rows;
    DamagedFile where they are not."""
    try:
        rows = list(tsv_reader(io.StringIO(data.decode(), newline="")))
    except UnicodeDecodeError:
        rows = None
    if rows is None or (data and not data.endswith(b"\n")):
        raise DamagedFile(path, f"bytes {start} to {start + len(data)} are not whole rows")
    return rows


def _check_counts(task, records, chunks):
    """The number of chunks of each record; DamagedFile unless the records and chunks are
    those the part lists, each row whole."""
    part = task.part
    if len(records) != part.records or any(len(r) != len(INPUT_RECORD_COLUMNS) for r in records):
        raise DamagedFile(
            task.records_tsv,
            f"it holds {len(records)} rows where part {part.part} of the parts table has "
            f"{part.records}",
        )
    counts = [int(record[_CHUNKS]) for record in records]
    if (
        len(chunks) != part.chunks
        or sum(counts) != part.chunks
        or any(len(c) != len(CHUNK_FRAME_COLUMNS) for c in chunks)
    ):
        raise DamagedFile(
            task.chunks_tsv,
            f"it holds {len(chunks)} rows where part {part.part} of the parts table has "
            f"{part.chunks} and its records {sum(counts)}",
        )
    return counts


def _first_best(values, counts):
    """The index in `values` of what max(run, key=float) picks in each run of `counts` values
    that is not empty: the first largest, or the run's first value where that is NaN (nothing
    compares larger than NaN, nor NaN larger than anything)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = (np.cumsum(counts) - counts)[counts > 0]
    if not len(starts):
        return []
    best = np.fmax.reduceat(values, starts)
    hits = np.flatnonzero(values == np.repeat(best, counts[counts > 0]))
    first = hits[np.minimum(np.searchsorted(hits, starts), len(hits) - 1)] if len(hits) else starts
    return np.where(np.isnan(values[starts]), starts, first).tolist()


def _scored_chunks(chunks, frame_counts, scores, texts, rule):
    """The _Scored columns of the chunks with frames: a chunk's best score of each class is
    that of its best frame."""
    others = [texts[0][i] for i in _first_best(scores[:, 0], frame_counts)]
    virus = [texts[1][i] for i in _first_best(scores[:, 1], frame_counts)]
    with_frames = [chunk for chunk, n in zip(chunks, frame_counts.tolist(), strict=True) if n]
    others_scores, virus_scores = list(map(float, others)), list(map(float, virus))
    return _Scored(
        [chunk[_CHUNK_ID] for chunk in with_frames],
        [int(chunk[_START]) for chunk in with_frames],
        [int(chunk[_END]) for chunk in with_frames],
        others,
        virus,
        others_scores,
        virus_scores,
        rule.chunk_is_virus(np.array(others_scores), np.array(virus_scores)).tolist(),
    )


def _record_rows(records, chunks, chunk_counts, with_frames, scored, rule, settings):
    """The rows of RECORD_COLUMNS of the part's records (a virus probability and estimated FDR
    NA until the calibration and all records give them), and of REGION_COLUMNS of their viral
    regions."""
    chunk_bounds = np.cumsum([0, *chunk_counts])
    # each record's run of scored chunks, [bounds[r], bounds[r + 1]), and of viral ones
    bounds = np.concatenate([[0], np.cumsum(with_frames)])[chunk_bounds].tolist()
    runs = np.diff(bounds)
    best_others = iter(_first_best(np.array(scored.others_scores), runs))
    best_virus = iter(_first_best(np.array(scored.virus_scores), runs))
    viral_before = np.concatenate([[0], np.cumsum(scored.is_virus, dtype=np.int64)]).tolist()
    viral_spans = [
        (start, end)
        for start, end, viral in zip(scored.starts, scored.ends, scored.is_virus, strict=True)
        if viral
    ]
    chunk_bounds = chunk_bounds.tolist()
    others_scores, virus_scores = scored.others_scores, scored.virus_scores
    others_texts, virus_texts = scored.others, scored.virus
    rows, regions = [], []
    for r, record in enumerate(records):
        first, end = bounds[r], bounds[r + 1]
        n = end - first
        if not n:
            reasons = [
                chunk[_CHUNK_REASON] for chunk in chunks[chunk_bounds[r] : chunk_bounds[r + 1]]
            ]
            reason = "; ".join(dict.fromkeys(reasons)) or record[_RECORD_REASON]
            summary = (0, "NA", 0, "NA", "NA", "NA", "NA", "NA", 0, "unscored", reason)
            rows.append((record[_RECORD_ID], record[_LENGTH], record[_CHUNKS], 0, *summary))
            continue
        found = []
        if n >= settings.min_chunks:
            track = [scored.chunk(k) for k in range(first, end)]
            found = _regions(record[_RECORD_ID], track, rule, settings)
            regions += found
        viral_first, viral_end = viral_before[first], viral_before[end]
        fraction = (viral_end - viral_first) / n
        bases = covered_bases(viral_spans[viral_first:viral_end])
        others, virus = next(best_others), next(best_virus)
        call = rule.record_call(others_scores[others], virus_scores[virus], fraction, bases, n)
        mean = sum(virus_scores[first:end]) / n
        rows.append(
            (
                record[_RECORD_ID],
                record[_LENGTH],
                record[_CHUNKS],
                n,
                viral_end - viral_first,
                f"{fraction:.6f}",
                bases,
                others_texts[others],
                virus_texts[virus],
                f"{mean:.6f}",
                "NA",
                "NA",
                len(found),
                call,
                "",
            )
        )
    return rows, regions


def _chunks_text(chunks, with_frames, scored):
    """The rows of CHUNK_COLUMNS of the part's chunks."""
    rows, k = [], 0
    for chunk, framed in zip(chunks, with_frames.tolist(), strict=True):
        if framed:
            rows.append((*chunk[:6], scored.others[k], scored.virus[k], scored.is_virus[k], ""))
            k += 1
        else:
            rows.append((*chunk[:6], "NA", "NA", "NA", chunk[_CHUNK_REASON]))
    return _table_text(rows)


def _table_text(rows):
    out = io.StringIO()
    tsv_writer(out).writerows(rows)
    return out.getvalue()


def _predictions(chunks, frames, scores, texts):
    """The original's prediction_results.txt rows of the part's frames."""
    labels = np.where(scores[:, 1] > scores[:, 0], "virus", "others").tolist()
    ids = [
        chunk[_CHUNK_ID] + name
        for chunk, names in zip(chunks, frames, strict=True)
        for name in names
    ]
    return "".join(
        f"{frame_id}\t{label}\t{others}\t{virus}\n"
        for frame_id, label, others, virus in zip(ids, labels, *texts, strict=True)
    )


def _probabilities(calibration, record_rows):
    """The calibrated virus probability of each record's best score; NaN where it has no
    score or the classifier no calibration."""
    if calibration is None:
        return np.full(len(record_rows), np.nan)
    best = [math.nan if row[_BEST] == "NA" else float(row[_BEST]) for row in record_rows]
    return calibration.apply(best)  # NaN stays NaN


def _records_text(record_rows, probabilities, calibration):
    if calibration is not None:
        record_rows = [
            (*row[:_PROBABILITY], _exact(probability), *row[_PROBABILITY + 1 :])
            for row, probability in zip(record_rows, probabilities, strict=True)
        ]
    return _table_text(record_rows)


def _exact(value):
    """A float as its shortest text that reads back as itself; NA for NaN."""
    return "NA" if math.isnan(value) else repr(float(value))


def _regions(record_id, scored, rule, settings):
    """Rows of REGION_COLUMNS for the viral regions of a record's scored chunks."""
    track = [c.virus_score for c in scored]
    found = []
    for first, last in viral_segments(track, rule.region_threshold, settings.penalty):
        chunks = scored[first : last + 1]
        start, end = chunks[0].start, chunks[-1].end
        found.append(
            (
                f"{record_id}|region_{start}_{end}",
                record_id,
                start,
                end,
                end - start + 1,
                chunks[0].id,
                chunks[-1].id,
                len(chunks),
                f"{fmean(track[first : last + 1]):.6f}",
                max(chunks, key=attrgetter("virus_score")).virus,
            )
        )
    return found
