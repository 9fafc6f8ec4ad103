"""The last stage: join the per-shard scores back to frames, chunks and input records, and write
the original's two result files plus a call for every record and every chunk, and the viral
regions of long records."""

import csv
import heapq
import itertools
import logging
import math
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from statistics import fmean

import numpy as np

from . import __version__
from .atomic import atomic_open
from .calibration import classifier_calibration, false_discovery_rates
from .calling import ORIGINAL_RULE, covered_bases
from .fidelity import GateReport
from .h5store import read_attrs
from .predict import check_scores
from .regions import viral_segments
from .tables import read_tsv, tsv_writer

log = logging.getLogger(__name__)

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


def aggregate_sample(
    sample,
    input_records_tsv,
    chunk_frames_tsv,
    shards,
    outputs,
    settings,
    rule,
    region_settings,
):
    """`shards`: the scores table and the embedding files of each shard, which are checked
    whole (and a damaged one named) before anything is written; `outputs`: the paths
    .predictions, .highestscore, .records, .chunks, .regions and .summary; `settings` names what
    the calls were made with: {classifier, chunk_size, chunking}, the classifier's calibration
    (where it holds one) giving each record's virus probability; `rule`: a calling.CallRule;
    `region_settings`: a regions.RegionSettings."""
    calibration = classifier_calibration(settings["classifier"])
    models, gates = {}, {}
    for scores_tsv, embedding_h5s in shards:
        attrs = [read_attrs(h5) for h5 in embedding_h5s]
        models.update((a["model_path"], a) for a in attrs)
        gates.update(
            (Path(h5).name, GateReport.from_attributes(a))
            for h5, a in zip(embedding_h5s, attrs, strict=True)
        )
        check_scores(scores_tsv, attrs[0]["rows"])
    scores = heapq.merge(*(read_tsv(p) for p, _ in shards), key=lambda r: int(r.ordinal))
    chunk_rows = read_tsv(chunk_frames_tsv)
    highest, totals = [], Counter()
    best_scores, called_virus = array("d"), array("b")  # of each record, for its probability
    with (
        atomic_open(outputs.predictions) as predictions_out,
        atomic_open(outputs.records) as records_out,
        _spare_file(outputs.records) as unranked,
        atomic_open(outputs.chunks) as chunks_out,
        atomic_open(outputs.regions) as regions_out,
    ):
        predictions_out.write("Sequence_ID\tPrediction\tscore1\tscore2\n")
        # record rows wait in `unranked` until every record's probability is known
        records, chunks = tsv_writer(unranked), tsv_writer(chunks_out)
        regions = tsv_writer(regions_out)
        tsv_writer(records_out).writerow(RECORD_COLUMNS)
        chunks.writerow(CHUNK_COLUMNS)
        regions.writerow(REGION_COLUMNS)
        for record in read_tsv(input_records_tsv):
            scored, reasons = [], []
            for chunk in itertools.islice(chunk_rows, int(record.chunks)):
                rows = _frame_scores(chunk, scores)
                predictions_out.writelines(
                    f"{r.frame_id}\t{r.prediction}\t{r.score1}\t{r.score2}\n" for r in rows
                )
                if rows:
                    # scores stay the float32 text the classifier wrote: float() of that
                    # text orders as the float32 values do, and the text is written unchanged
                    s1 = max((r.score1 for r in rows), key=float)
                    s2 = max((r.score2 for r in rows), key=float)
                    others, virus = float(s1), float(s2)
                    # the original's table keeps the original's rule whatever the config says
                    highest.append((chunk.chunk_id, ORIGINAL_RULE.chunk_is_virus(others, virus)))
                    is_virus = rule.chunk_is_virus(others, virus)
                    start, end = int(chunk.start), int(chunk.end)
                    scored.append(
                        _ScoredChunk(chunk.chunk_id, start, end, s1, s2, others, virus, is_virus)
                    )
                    chunks.writerow((*chunk[:6], s1, s2, is_virus, ""))  # chunk_id .. frames
                else:
                    reasons.append(chunk.reason)
                    chunks.writerow((*chunk[:6], "NA", "NA", "NA", chunk.reason))
            found = []
            if len(scored) >= region_settings.min_chunks:
                found = _regions(record.record_id, scored, rule, region_settings)
                regions.writerows(found)
            row = _record_row(record, scored, reasons, len(found), rule)
            records.writerow(row)
            best_scores.append(math.nan if row[_BEST] == "NA" else float(row[_BEST]))
            called_virus.append(row[_CALL] == "virus")
            totals["records"] += 1
            totals["chunks"] += int(record.chunks)
            totals["chunks_scored"] += len(scored)
            totals["regions"] += len(found)
            totals[f"call_{row[_CALL]}"] += 1
        leftover = next(scores, None)
        if leftover is not None or next(chunk_rows, None) is not None:
            raise ValueError(f"scores or chunks of {sample} do not match its input records")
        probabilities = _probabilities(calibration, best_scores)
        _write_ranked(unranked, records_out, probabilities)
    virus_calls = probabilities[np.asarray(called_virus, dtype=bool)]
    with atomic_open(outputs.highestscore) as handle:
        table = tsv_writer(handle)
        table.writerow(("Modified_ID", "Is_Virus"))
        table.writerows(sorted(highest))  # pandas' groupby order: chunk ids sorted as text
    _write_summary(
        outputs.summary,
        sample,
        totals,
        (models, {h5: gate for h5, gate in gates.items() if gate is not None}),
        settings,
        rule,
        region_settings,
        None if calibration is None else virus_calls,
    )
    log.info(
        "%s: %d records, %d called virus, %d regions",
        sample,
        totals["records"],
        totals["call_virus"],
        totals["regions"],
    )


@dataclass(slots=True)
class _ScoredChunk:
    """A chunk with frames: where it is, its best scores (the classifier's text, written as it
    is, and its value) and its call."""

    id: str
    start: int
    end: int
    others: str
    virus: str
    others_score: float
    virus_score: float
    is_virus: bool


def _spare_file(beside):
    """A nameless temporary file in the folder of the output `beside`, which has room for what
    the output holds (a /tmp may not), gone when closed or its process killed."""
    folder = Path(beside).parent
    return tempfile.TemporaryFile("w+", newline="", encoding="utf-8", dir=folder)


def _probabilities(calibration, best_scores):
    """The calibrated virus probability of each record's best score; NaN where it has no score
    or the classifier no calibration."""
    if calibration is None:
        return np.full(len(best_scores), np.nan)
    return calibration.apply(best_scores)  # NaN stays NaN


def _write_ranked(unranked, records_out, probabilities):
    """Copy the record rows of `unranked` to `records_out` with each one's virus probability
    and estimated FDR, which needs the probabilities of all records."""
    rates = false_discovery_rates(probabilities)
    unranked.seek(0)
    out = tsv_writer(records_out)
    rows = csv.reader(unranked, delimiter="\t")
    for row, probability, rate in zip(rows, probabilities, rates, strict=True):
        row[_PROBABILITY], row[_FDR] = _exact(probability), _exact(rate)
        out.writerow(row)


def _exact(value):
    """A float as its shortest text that reads back as itself; NA for NaN."""
    return "NA" if math.isnan(value) else repr(float(value))


def _record_row(record, scored, reasons, region_count, rule):
    """A record's row of RECORD_COLUMNS: the scores its call reads, and the call. Its virus
    probability and estimated FDR are NA until _write_ranked."""
    if not scored:
        reason = "; ".join(dict.fromkeys(reasons)) or record.reason
        summary = (0, "NA", 0, "NA", "NA", "NA", "NA", region_count, "unscored", reason)
        return (record.record_id, record.length, record.chunks, 0, *summary)
    best_others = max(scored, key=attrgetter("others_score"))
    best_virus = max(scored, key=attrgetter("virus_score"))
    viral = [c for c in scored if c.is_virus]
    fraction = len(viral) / len(scored)
    bases = covered_bases((c.start, c.end) for c in viral)
    call = rule.record_call(
        best_others.others_score, best_virus.virus_score, fraction, bases, len(scored)
    )
    mean = sum(c.virus_score for c in scored) / len(scored)
    return (
        record.record_id,
        record.length,
        record.chunks,
        len(scored),
        len(viral),
        f"{fraction:.6f}",
        bases,
        best_virus.virus,
        f"{mean:.6f}",
        "NA",
        "NA",
        region_count,
        call,
        "",
    )


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


def _frame_scores(chunk, scores):
    """The score rows of a chunk's kept frames, which come next in frame order."""
    names = chunk.frames.split(",") if chunk.frames else []
    rows = list(itertools.islice(scores, len(names)))
    if [row.frame_id for row in rows] != [chunk.chunk_id + name for name in names]:
        raise ValueError(f"scores for chunk {chunk.chunk_id} are missing or out of order")
    return rows


def _write_summary(
    path, sample, totals, embeddings, settings, rule, region_settings, virus_probabilities
):
    """`embeddings`: (the attributes of the embedding files, one per model path; the FP8
    fidelity.GateReport of each file that has one, by file name); `virus_probabilities`: those
    of the records called virus, None without a calibration."""
    models, gates = embeddings
    lines = [
        f"virnucpro {__version__}: sample {sample}",
        f"records: {totals['records']} ({totals['call_virus']} virus, {totals['call_others']} "
        f"others, {totals['call_unscored']} unscored: see the reason column of records.tsv)",
        f"chunks: {totals['chunks']} ({totals['chunks_scored']} scored)",
        f"viral regions: {totals['regions']} (regions.tsv)",
        f"chunks of {settings['chunk_size']} bp, chunking {settings['chunking']}",
        f"classifier: {settings['classifier']}",
        f"calls: {rule.describe()}",
        _calls_fdr(virus_probabilities),
        f"regions: records of {region_settings.min_chunks} or more scored chunks, cut at change "
        f"points (penalty {region_settings.penalty:g}), segments of mean chunk score >= "
        f"{rule.region_threshold:g}",
        "embedding models:",
        *(f"  {a['model']} from {p}, {a['precision']} on {a['device']}" for p, a in models.items()),
    ]
    if gates:
        lines.append("FP8 fidelity gate of each shard (embedding.fp8_gate):")
        lines += (f"  {name}: {gate.describe()}" for name, gate in gates.items())
    if any(a["random_weights"] for a in models.values()):
        lines += [
            "",
            "WARNING: the embedding models have RANDOM weights (a demo or test checkpoint).",
            "The scores and calls of this run mean nothing; set config models to the real ones.",
        ]
    with atomic_open(path) as handle:
        handle.write("\n".join(lines) + "\n")


def _calls_fdr(virus_probabilities):
    """The summary's line on the false discovery rate of the virus calls."""
    if virus_probabilities is None:
        return (
            "virus_probability and estimated_fdr: NA, as the classifier has no calibration "
            "(the original's classifiers have none; one that virnucpro trains has)"
        )
    rate = f"{np.mean(1 - virus_probabilities):.4f}" if virus_probabilities.size else "NA"
    return (
        f"estimated false discovery rate of the {virus_probabilities.size} virus calls: {rate} "
        "(the mean of 1 - virus_probability over them), as far as the held-out labelled frames "
        "the classifier's calibration was fitted on resemble this sample's, their share of "
        "viruses included"
    )
