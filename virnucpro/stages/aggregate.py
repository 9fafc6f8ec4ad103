"""The last stage: each shard's scores joined back to frames, chunks and input records, part
by part over worker processes (calls.part_calls); the original's two result files, a call for
every record and every chunk, and the viral regions of long records, written in input order.

The main process reads the scores of the shards the parts in flight need (shards and parts are
both runs of consecutive frames), hands each part's scores to a worker, and writes what the
workers return in part order; beyond that it holds a few bytes a record (each one's virus
probability and call, for the estimated FDR, which needs all of them). The original's
highest-score table, sorted by chunk id, is sorted by GNU sort (external_sort.py)."""

import csv
import functools
import io
import logging
import shutil
import tempfile
from collections import Counter, namedtuple
from pathlib import Path

import numpy as np

from .. import __version__
from ..calls.calibration import classifier_calibration, false_discovery_rates
from ..calls.fidelity import GateReport
from ..calls.part_calls import (
    CHUNK_COLUMNS,
    RECORD_COLUMNS,
    REGION_COLUMNS,
    Calling,
    PartTask,
    call_part,
    rank_records,
)
from ..calls.parts import check_ranges, part_rows, read_parts
from ..calls.scoring import ShardScorer
from ..io.atomic import atomic_open
from ..io.damage import DamagedFile
from ..io.external_sort import sorting_into
from ..io.shards import read_manifest
from ..io.table_sizes import sizes_line
from ..runtime.parallel import ordered_map

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("Sequence_ID", "Prediction", "score1", "score2")
HIGHEST_COLUMNS = ("Modified_ID", "Is_Virus")
_COPY_BYTES = 1 << 24
_Shard = namedtuple("_Shard", ("first_ordinal", "frames", "files"))
# what a part wrote: its records, and the bytes of its rows of records.tsv and regions.tsv
_PartSizes = namedtuple("_PartSizes", ("records", "records_bytes", "regions_bytes"))


def aggregate_sample(
    sample, prepared, embeddings, outputs, settings, rule, region_settings, workers=1
):
    """`prepared`: the paths .records, .chunks and .parts of prepare_sample's tables, and the
    shards' .manifest; `embeddings`: the embedding files of each shard of the manifest, in its
    order, one per model in features order, which are checked whole (and a damaged one named)
    before anything is written; `outputs`: the paths .predictions, .highestscore, .records,
    .chunks, .regions and .summary;
    `settings` names what the calls were made with: {classifier, chunk_size, chunking}, the
    classifier's calibration (where it holds one) giving each record's virus probability;
    `rule`: a calling.CallRule; `region_settings`: a regions.RegionSettings. `workers`
    processes do the work (and as many threads score embeddings where the stored scores are
    of another classifier); the outputs do not depend on their number. Returns where each
    part's rows lie in records.tsv and regions.tsv (parts.PartRows), for the viral FASTA."""
    calibration = classifier_calibration(settings["classifier"])
    parts = read_parts(prepared.parts)
    check_ranges(parts, prepared.input_records, "records", prepared.parts)
    check_ranges(parts, prepared.chunk_frames, "chunks", prepared.parts)
    shards = _shards(prepared.manifest, embeddings, parts, prepared.parts)
    scorer = ShardScorer(settings["classifier"], threads=workers)
    models, gates = {}, {}
    for shard in shards:
        attrs = scorer.check(shard.files, shard.first_ordinal, shard.frames)
        models.update((a["model_path"], a) for a in attrs)
        gates.update(
            (Path(h5).name, GateReport.from_attributes(a))
            for h5, a in zip(shard.files, attrs, strict=True)
        )
    results = ordered_map(
        functools.partial(call_part, Calling(rule, region_settings, calibration)),
        _tasks(parts, shards, scorer, prepared),
        min(workers, len(parts)),  # a small sample spares itself the starting of idle ones
    )
    folder, tally = Path(outputs.records).parent, _Tally()
    with (
        atomic_open(outputs.predictions, "wb") as predictions,
        atomic_open(outputs.chunks, "wb") as chunks,
        atomic_open(outputs.regions, "wb") as regions,
        atomic_open(outputs.records, "wb") as records,
        _spare_file(folder) as unranked,
        _spare_file(folder) as highest,
    ):
        for out, columns in (
            (predictions, PREDICTION_COLUMNS),
            (chunks, CHUNK_COLUMNS),
            (regions, REGION_COLUMNS),
            (records, RECORD_COLUMNS),
        ):
            out.write(_header(columns))
        # without a calibration a record's row is whole at once; with one it waits in
        # `unranked` for its estimated FDR, which needs every record's probability
        first_pass = unranked if calibration is not None else records
        with sorting_into(highest, workers, folder) as unsorted:
            for result in results:
                for out, rows in (
                    (predictions, result.predictions),
                    (chunks, result.chunks),
                    (first_pass, result.records),
                    (regions, result.regions),
                    (unsorted, result.highest),
                ):
                    out.write(rows)
                tally.add(result)
            unsorted.close()  # sort merges its runs meanwhile
            probabilities = tally.probabilities()
            if calibration is not None:
                tally.sizes = _write_ranked(unranked, records, tally.sizes, probabilities, workers)
        _write_highest(highest, outputs.highestscore, tally.quoted)
    rows = part_rows(
        [(part.records_bytes, part.regions_bytes) for part in tally.sizes],
        len(_header(RECORD_COLUMNS)),
        len(_header(REGION_COLUMNS)),
    )
    _write_summary(
        outputs,
        sample,
        tally.totals,
        (models, {h5: gate for h5, gate in gates.items() if gate is not None}),
        settings,
        rule,
        region_settings,
        None if calibration is None else probabilities[tally.called_virus()],
    )
    log.info(
        "%s: %d records, %d called virus, %d regions (%d workers)",
        sample,
        tally.totals["records"],
        tally.totals["call_virus"],
        tally.totals["regions"],
        workers,
    )
    return rows


class _Tally:
    """What the parts add up to: the sample's counts, whether some chunk id is quoted in a
    table, each part's _PartSizes, and each record's virus probability and call (a few bytes a
    record, for the estimated FDR)."""

    def __init__(self):
        self.totals, self.quoted, self.sizes = Counter(), False, []
        self._probabilities, self._called = [], []

    def add(self, result):
        self.totals.update(result.totals)
        self.quoted |= result.quoted
        self.sizes.append(
            _PartSizes(len(result.probabilities), len(result.records), len(result.regions))
        )
        self._probabilities.append(result.probabilities)
        self._called.append(result.called_virus)

    def probabilities(self):
        return np.concatenate([np.empty(0), *self._probabilities])

    def called_virus(self):
        return np.concatenate([np.empty(0, dtype=bool), *self._called])


def _shards(manifest_tsv, embeddings, parts, parts_tsv):
    """The manifest's shards with their embedding files; DamagedFile unless they are runs of
    consecutive frames that hold the parts' frames."""
    rows = read_manifest(manifest_tsv)
    if len(rows) != len(embeddings):
        raise ValueError(
            f"{manifest_tsv} lists {len(rows)} shards, but the embedding files of "
            f"{len(embeddings)} were given"
        )
    shards, frames = [], 0
    for row, files in zip(rows, embeddings, strict=True):
        shard = _Shard(int(row["first_ordinal"]), int(row["frames"]), list(files))
        if shard.first_ordinal != frames:
            raise DamagedFile(
                manifest_tsv, f"{row['shard']} starts at frame {shard.first_ordinal}, not {frames}"
            )
        shards.append(shard)
        frames += shard.frames
    in_parts = sum(part.frames for part in parts)
    if frames != in_parts:
        raise DamagedFile(
            parts_tsv, f"its parts hold {in_parts} frames, but {manifest_tsv} lists {frames}"
        )
    return shards


def _tasks(parts, shards, scorer, prepared):
    """The PartTask of each part, its scores sliced from the shards that hold its frames (a
    part may straddle two); a shard's scores are held only while parts need them."""
    held = {}  # shard index: its scores in ordinal order
    for part in parts:
        start, end = part.first_ordinal, part.first_ordinal + part.frames
        needed = [
            i
            for i, shard in enumerate(shards)
            if shard.first_ordinal < end and shard.first_ordinal + shard.frames > start
        ]
        for i in set(held) - set(needed):
            del held[i]  # the parts are in ordinal order: no later one needs it
        pieces = []
        for i in needed:
            shard = shards[i]
            if i not in held:
                held[i] = scorer.scores(shard.files, shard.first_ordinal)
            pieces.append(held[i][max(start - shard.first_ordinal, 0) : end - shard.first_ordinal])
        scores = np.concatenate(pieces) if pieces else np.empty((0, 2), dtype=np.float32)
        yield PartTask(part, str(prepared.input_records), str(prepared.chunk_frames), scores)


def _spare_file(folder):
    """A nameless temporary file in `folder`, which has room for what the outputs there hold
    (a /tmp may not), gone when closed or its process killed."""
    return tempfile.TemporaryFile("w+b", dir=folder)


def _write_ranked(unranked, records, parts, probabilities, workers):
    """Copy each part's record rows from `unranked` to `records` with their estimated FDR, in
    worker processes; `parts`: each part's _PartSizes, returned with the rows' new bytes."""
    rates = false_discovery_rates(probabilities)
    ends = np.cumsum([part.records for part in parts], dtype=np.int64)
    unranked.seek(0)
    tasks = (
        (unranked.read(part.records_bytes), rates[end - part.records : end])
        for part, end in zip(parts, ends, strict=True)
    )
    ranked = []
    for part, rows in zip(parts, ordered_map(_rank, tasks, min(workers, len(parts))), strict=True):
        records.write(rows)
        ranked.append(part._replace(records_bytes=len(rows)))
    return ranked


def _rank(task):
    return rank_records(*task)


def _write_highest(sorted_lines, path, quoted):
    """The original's highest-score table: its header, then the sorted lines, whose ids are
    quoted where some id holds a '"' (rare: ids are FASTA header words), as the original's
    pandas table quoted them (csv's default quoting; the workflow's own tables quote none)."""
    sorted_lines.seek(0)
    with atomic_open(path, "wb") as out:
        out.write(_header(HIGHEST_COLUMNS))
        if not quoted:
            shutil.copyfileobj(sorted_lines, out, _COPY_BYTES)
            return
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        table = csv.writer(text, delimiter="\t", lineterminator="\n")
        for line in io.TextIOWrapper(sorted_lines, encoding="utf-8", newline=""):
            table.writerow(line.removesuffix("\n").split("\t"))
        text.detach()


def _header(columns):
    return ("\t".join(columns) + "\n").encode()


def _write_summary(
    outputs, sample, totals, embeddings, settings, rule, region_settings, virus_probabilities
):
    """Write outputs.summary, which ends with the bytes of the tables written before it
    (table_sizes.py). `embeddings`: (the attributes of the embedding files, one per model path;
    the FP8 fidelity.GateReport of each file that has one, by file name); `virus_probabilities`:
    those of the records called virus, None without a calibration."""
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
    lines.append(sizes_line([outputs.records, outputs.chunks, outputs.regions]))  # last
    with atomic_open(outputs.summary) as handle:
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
