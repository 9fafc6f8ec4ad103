"""The last stage: join the per-shard scores back to frames, chunks and input records, and write
the original's two result files plus a call for every record and every chunk."""

import heapq
import itertools
import logging
from collections import Counter

from . import __version__
from .atomic import atomic_open
from .h5store import read_attrs
from .predict import check_scores
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
    "best_virus_score",
    "call",
    "reason",
)


def aggregate_sample(
    sample,
    input_records_tsv,
    chunk_frames_tsv,
    shards,
    predictions_txt,
    highestscore_csv,
    records_tsv,
    chunks_tsv,
    summary_txt,
    settings,
):
    """`shards`: the scores table and the embedding files of each shard, which are checked
    whole (and a damaged one named) before anything is written; `settings` names what the calls
    were made with: {classifier, chunk_size, chunking}."""
    models = {}
    for scores_tsv, embedding_h5s in shards:
        attrs = [read_attrs(h5) for h5 in embedding_h5s]
        models.update((a["model_path"], a) for a in attrs)
        check_scores(scores_tsv, attrs[0]["rows"])
    scores = heapq.merge(*(read_tsv(p) for p, _ in shards), key=lambda r: int(r.ordinal))
    chunk_rows = read_tsv(chunk_frames_tsv)
    highest, totals = [], Counter()
    with (
        atomic_open(predictions_txt) as predictions_out,
        atomic_open(records_tsv) as records_out,
        atomic_open(chunks_tsv) as chunks_out,
    ):
        predictions_out.write("Sequence_ID\tPrediction\tscore1\tscore2\n")
        records, chunks = tsv_writer(records_out), tsv_writer(chunks_out)
        records.writerow(RECORD_COLUMNS)
        chunks.writerow(CHUNK_COLUMNS)
        for record in read_tsv(input_records_tsv):
            best1, best2, reasons = [], [], []
            virus = 0
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
                    is_virus = float(s2) >= float(s1)  # the original's rule, ties to virus
                    highest.append((chunk.chunk_id, is_virus))
                    best1.append(s1)
                    best2.append(s2)
                    virus += is_virus
                    chunks.writerow((*chunk[:6], s1, s2, is_virus, ""))  # chunk_id .. frames
                else:
                    reasons.append(chunk.reason)
                    chunks.writerow((*chunk[:6], "NA", "NA", "NA", chunk.reason))
            scored = len(best1)
            if scored:
                s1, s2 = max(best1, key=float), max(best2, key=float)
                call, best_virus, reason = ("virus" if float(s2) >= float(s1) else "others"), s2, ""
            else:
                call, best_virus = "unscored", "NA"
                reason = "; ".join(dict.fromkeys(reasons)) or record.reason
            records.writerow(
                (
                    record.record_id,
                    record.length,
                    record.chunks,
                    scored,
                    virus,
                    best_virus,
                    call,
                    reason,
                )
            )
            totals["records"] += 1
            totals["chunks"] += int(record.chunks)
            totals["chunks_scored"] += scored
            totals[f"call_{call}"] += 1
        leftover = next(scores, None)
        if leftover is not None or next(chunk_rows, None) is not None:
            raise ValueError(f"scores or chunks of {sample} do not match its input records")
    with atomic_open(highestscore_csv) as handle:
        table = tsv_writer(handle)
        table.writerow(("Modified_ID", "Is_Virus"))
        table.writerows(sorted(highest))  # pandas' groupby order: chunk ids sorted as text
    _write_summary(summary_txt, sample, totals, models, settings)
    log.info("%s: %d records, %d called virus", sample, totals["records"], totals["call_virus"])


def _frame_scores(chunk, scores):
    """The score rows of a chunk's kept frames, which come next in frame order."""
    names = chunk.frames.split(",") if chunk.frames else []
    rows = list(itertools.islice(scores, len(names)))
    if [row.frame_id for row in rows] != [chunk.chunk_id + name for name in names]:
        raise ValueError(f"scores for chunk {chunk.chunk_id} are missing or out of order")
    return rows


def _write_summary(path, sample, totals, models, settings):
    """`models`: the attributes of the embedding files, one per model path."""
    lines = [
        f"virnucpro {__version__}: sample {sample}",
        f"records: {totals['records']} ({totals['call_virus']} virus, {totals['call_others']} "
        f"others, {totals['call_unscored']} unscored: see the reason column of records.tsv)",
        f"chunks: {totals['chunks']} ({totals['chunks_scored']} scored)",
        f"chunks of {settings['chunk_size']} bp, chunking {settings['chunking']}",
        f"classifier: {settings['classifier']}",
        "embedding models:",
        *(f"  {a['model']} from {p}, {a['precision']} on {a['device']}" for p, a in models.items()),
    ]
    if any(a["random_weights"] for a in models.values()):
        lines += [
            "",
            "WARNING: the embedding models have RANDOM weights (a demo or test checkpoint).",
            "The scores and calls of this run mean nothing; set config models to the real ones.",
        ]
    with atomic_open(path) as handle:
        handle.write("\n".join(lines) + "\n")
