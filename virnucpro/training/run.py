"""From embedded labelled frames to a classifier file, and back to metrics: a training run's
library layer. It reads the per-shard embedding files the prediction stages write, fits the MLP
as training.fit does, and saves it with what made it (models, widths, data digest, seed, metrics,
calibration) in the file's header, so a classifier file says where it came from."""

import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..calls.calibration import classifier_calibration, fit_calibration
from ..calls.scoring import check_width, score_files
from ..io.atomic import atomic_open
from ..io.classifier_header import (
    CALIBRATION_KEY,
    CHUNK_SIZE_KEY,
    EMBEDDING_MODELS_KEY,
    LEGACY_KEY,
    METRICS_KEY,
    RANDOM_ENCODERS_KEY,
    SEED_KEY,
    TRAINING_DATA_KEY,
    WIDTHS_KEY,
)
from ..io.damage import DamagedFile
from ..io.h5store import open_shard, random_weights
from ..io.tables import read_tsv, tsv_writer
from ..models.checkpoints import load_classifier
from ..models.classifier import save_classifier, scores
from .evaluation import evaluate_scores, plot_evaluation, write_metrics
from .fit import fit_classifier, split_indices

log = logging.getLogger(__name__)

RANDOM_ENCODERS = (
    "the embedding models have RANDOM weights (a demo or test checkpoint): the classifier "
    "learns what random features keep, and its metrics say nothing of the published models"
)
LABEL_VALUES = {"virus": 1, "other": 0}  # the labels table's words, as evaluation's labels
LABEL_COLUMNS = ("frame_id", "label")


class TrainingSet(NamedTuple):
    """One labelled set of a training run: its shards (each a list of its embedding files, one
    per model in features order) and its labels table (read_labels). `label` (the set's
    sheet label, virus or other) and `fasta` (its input) place it in SPEC order."""

    shards: list
    labels_tsv: str
    label: str
    fasta: str


def in_spec_order(sets):
    """The TrainingSets in the order the original concatenated its data (SPEC §7): virus sets
    first, then the others, each sorted by their FASTA path."""
    return sorted(sets, key=lambda s: (s.label != "virus", str(s.fasta)))


class TrainingMatrix(NamedTuple):
    """Every frame of a training run's shards, ordered by ordinal (their input order)."""

    features: np.ndarray  # [N, sum(widths)] float32: each model's vector side by side
    labels: np.ndarray  # [N] int64: 1 virus, 0 other
    widths: tuple  # each model's vector width, in features order
    model_names: tuple  # each model's name (its files' `model` attribute), in features order
    frame_ids: list
    ordinals: np.ndarray  # [N] int64


def read_labels(labels_tsv):
    """{frame id: 1 (virus) or 0 (other)} of a table with columns frame_id and label, the label
    `virus` or `other`."""
    labels = {}
    for line, row in enumerate(read_tsv(labels_tsv), start=2):
        if not set(LABEL_COLUMNS) <= set(row._fields):
            raise ValueError(f"{labels_tsv} needs the columns {LABEL_COLUMNS}: {row._fields}")
        if row.label not in LABEL_VALUES:
            raise ValueError(
                f"{labels_tsv} line {line}: label {row.label!r} is not one of {list(LABEL_VALUES)}"
            )
        if row.frame_id in labels:
            raise ValueError(f"{labels_tsv} line {line}: frame {row.frame_id} labelled twice")
        labels[row.frame_id] = LABEL_VALUES[row.label]
    return labels


def read_lengths(labels_tsv):
    """{frame id: the length in bases of the chunk it was read from} of a labels table's
    `length` column, which select_training_set writes."""
    lengths = {}
    for row in read_tsv(labels_tsv):
        if "length" not in row._fields:
            raise ValueError(f"{labels_tsv} has no length column: {row._fields}")
        lengths[row.frame_id] = int(row.length)
    return lengths


def training_matrix(shards, labels_by_frame):
    """The TrainingMatrix of `shards` (each a list of its embedding files, one per model in
    features order, as the aggregation takes them) labelled from `labels_by_frame` ({frame id:
    1 or 0}), which must label every frame.

    Two passes over the files: the first reads the frames, so that the second can read each
    file's vectors straight into their rows of one matrix, which is the largest thing a training
    run holds (13 GB per million frames of DNABERT-S and ESM-2 3B features)."""
    if not shards:
        raise ValueError("a training matrix needs at least one shard")
    layout, shard_ordinals, frame_ids = None, [], []
    for paths in shards:
        with open_shard(paths) as files:
            found = tuple((h5["embedding"].shape[1], str(h5.attrs["model"])) for h5 in files)
            if layout is not None and found != layout:
                raise ValueError(
                    f"{', '.join(map(str, paths))} hold vectors of (width, model) {found}, those "
                    f"of {', '.join(map(str, shards[0]))} {layout}: not one training run's shards"
                )
            layout = found
            shard_ordinals.append(files[0]["ordinal"][:])
            frame_ids.extend(files[0]["frame_id"].asstr()[:])
    ordinals = np.concatenate(shard_ordinals)
    if np.unique(ordinals).size != ordinals.size:
        raise ValueError("a frame ordinal occurs twice among the shards: is a shard given twice?")
    order = np.argsort(ordinals, kind="stable")
    row_of = np.empty_like(order)
    row_of[order] = np.arange(order.size)  # the matrix row of each frame as the shards list it
    widths = tuple(width for width, _ in layout)
    edges = np.cumsum((0,) + widths)
    features = np.empty((ordinals.size, edges[-1]), dtype=np.float32)
    start = 0
    for paths, listed in zip(shards, shard_ordinals, strict=True):
        rows = row_of[start : start + listed.size]
        with open_shard(paths) as files:
            for h5, left, right in zip(files, edges, edges[1:], strict=False):
                features[rows, left:right] = h5["embedding"][:]
        start += listed.size
    frame_ids = [frame_ids[i] for i in order]
    return TrainingMatrix(
        features,
        np.array(_looked_up(frame_ids, labels_by_frame, "label"), dtype=np.int64),
        widths,
        tuple(name for _, name in layout),
        frame_ids,
        ordinals[order],
    )


def sets_matrix(sets):
    """The TrainingMatrix of several TrainingSets, each set's frames in ordinal order and the
    sets one after the other as given: each set numbers its frames from 0, so the ordinals
    repeat across sets and are unique only within one."""
    if not sets:
        raise ValueError("a training run needs at least one labelled set")
    parts = []
    for s in sets:
        with _listing_every_frame(s.labels_tsv):
            parts.append(training_matrix(s.shards, read_labels(s.labels_tsv)))
    layouts = {(part.widths, part.model_names) for part in parts}
    if len(layouts) > 1:
        raise ValueError(f"the sets hold vectors of different (widths, models): {sorted(layouts)}")
    return TrainingMatrix(
        np.concatenate([part.features for part in parts]),
        np.concatenate([part.labels for part in parts]),
        parts[0].widths,
        parts[0].model_names,
        [frame_id for part in parts for frame_id in part.frame_ids],
        np.concatenate([part.ordinals for part in parts]),
    )


class _Unlisted(ValueError):
    """Frames that a table of frames does not list."""


def _looked_up(frame_ids, by_frame, what):
    """The value of each frame in `by_frame`, a ValueError naming frames that have none."""
    missing = [frame_id for frame_id in frame_ids if frame_id not in by_frame]
    if missing:
        raise _Unlisted(f"{len(missing)} frames have no {what}, such as {missing[:3]}")
    return [by_frame[frame_id] for frame_id in frame_ids]


@contextmanager
def _listing_every_frame(labels_tsv):
    """A labels table that lacks frames of its set is damaged (cut short at a line end, its rows
    look whole): its set's job labels every frame it selects."""
    try:
        yield
    except _Unlisted as unlisted:
        raise DamagedFile(labels_tsv, f"{unlisted}: it lacks rows of its set's frames") from None


def training_data_sha256(labels_tsvs, ordinals, frame_ids):
    """The SHA-256 of a training run's data: its labels files' bytes (in the order of its sets)
    and its frames' ordinals and ids, each part prefixed by its length so no two inputs run
    together alike.

    Not the vectors: hashing them would read every embedding file a second time, gigabytes,
    and vectors recomputed on another GPU or batch size differ in their last bits, so their
    digest would change where the data did not. The frames name what was embedded, and the
    header's embedding_models what embedded it."""
    digest = hashlib.sha256()
    parts = (
        *(Path(labels_tsv).read_bytes() for labels_tsv in labels_tsvs),
        np.asarray(ordinals, dtype="<i8").tobytes(),
        "\n".join(frame_ids).encode(),
    )
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def train_classifier(
    sets, models, chunk_size, seed, legacy, out_path, history_tsv, metrics_tsv, device="cpu"
):
    """Fit a classifier of the `models`' features (some of EMBEDDING_MODELS, in that order, one
    per file of each shard) on the frames of `sets` (TrainingSets, taken in_spec_order), and
    write it to `out_path` (.safetensors), its per-epoch history to `history_tsv` and its
    held-out metrics to `metrics_tsv`.

    The frames are split by training.fit.split_indices with `seed`, which also seeds the fit; on the
    CPU the same inputs and seed give a byte-identical file. The header records the metadata
    keys of models.classifier. The calibration is fitted on the held-out split's scores, as the
    only frames the fit did not see (the training frames' scores are over-confident); an
    evaluation set of its own can refit it later. It trains on `device` (a GPU: the batches of
    32 frames are too small to keep the CPU's cores busy). Returns the held-out metrics."""
    models = tuple(models)
    sets = in_spec_order(sets)
    matrix = sets_matrix(sets)
    if len(models) != len(matrix.widths):
        raise ValueError(
            f"a shard gives {len(matrix.widths)} embedding files for the models {models}: give "
            "one per model, in the models' order"
        )
    random = _random_encoders(sets)
    if random:
        log.warning(RANDOM_ENCODERS)
    train, test = split_indices(len(matrix.labels), seed)
    features = torch.from_numpy(matrix.features).to(device)
    labels = torch.from_numpy(matrix.labels).to(device)
    model, history, epoch = fit_classifier(
        features[train], labels[train], features[test], labels[test], seed=seed, legacy=legacy
    )
    log.info("kept the weights of epoch %d of %d", epoch, len(history))
    model = model.cpu()
    held_out_labels = matrix.labels[test]
    held_out_scores = scores(model, features[test].cpu())[:, 1].numpy()
    metrics = evaluate_scores(held_out_labels, held_out_scores)
    metadata = {
        WIDTHS_KEY: ",".join(map(str, matrix.widths)),
        CHUNK_SIZE_KEY: str(chunk_size),
        EMBEDDING_MODELS_KEY: json.dumps(dict(zip(models, matrix.model_names, strict=True))),
        TRAINING_DATA_KEY: training_data_sha256(
            [s.labels_tsv for s in sets], matrix.ordinals, matrix.frame_ids
        ),
        METRICS_KEY: json.dumps(metrics, allow_nan=False),
        SEED_KEY: str(seed),
        LEGACY_KEY: json.dumps(bool(legacy)),
        RANDOM_ENCODERS_KEY: json.dumps(random),
    }
    if 0 < held_out_labels.sum() < held_out_labels.size:
        calibration = fit_calibration(held_out_scores, held_out_labels)
        metadata[CALIBRATION_KEY] = calibration.to_json()
    else:
        log.warning(
            "no calibration: the %d held-out frames are of one class; fit one on an evaluation set",
            held_out_labels.size,
        )
    save_classifier(model, out_path, models, metadata)
    _write_history(history, history_tsv)
    write_metrics(metrics, metrics_tsv)
    return metrics


def _random_encoders(sets):
    """Whether the sets were embedded by models of random weights (a demo or test checkpoint),
    as their embedding files say."""
    return random_weights(path for s in sets for paths in s.shards for path in paths)


def _write_history(history, tsv_path):
    """fit_classifier's history, a row per epoch; NA where a metric is undefined (ROC-AUC of a
    held-out split of one class), as write_metrics writes it."""
    columns = tuple(history[0])
    with atomic_open(tsv_path) as handle:
        writer = tsv_writer(handle)
        writer.writerow(columns)
        for row in history:
            writer.writerow("NA" if np.isnan(row[name]) else row[name] for name in columns)


def evaluate_classifier(sets, classifier_path, metrics_tsv, figure_svg, by_length=False):
    """Score the frames of `sets` (TrainingSets, or any pairs of shards and labels table: each
    shard a list of embedding files, one per model of the classifier, in features order) with
    the classifier file, and write the metrics of the scores at 0.5 against each set's labels
    (read_labels) to `metrics_tsv` and their figure to `figure_svg`, with the calibrated scores
    beside them where the classifier holds a calibration. `by_length` adds metrics by the
    length of the frames' chunks, each set's read_lengths. Returns the metrics."""
    model = load_classifier(classifier_path)
    labels, lengths, virus_scores, random = [], [], [], False
    for shards, labels_tsv, *_ in sets:
        set_frames = []
        for paths in shards:
            with open_shard(paths) as files:
                widths = [h5["embedding"].shape[1] for h5 in files]
                names = [str(h5.attrs["model"]) for h5 in files]
                random |= any(bool(h5.attrs["random_weights"]) for h5 in files)
                check_width(model, widths, classifier_path, paths, names)
                embeddings = [h5["embedding"] for h5 in files]
                virus_scores.append(score_files(model, embeddings, classifier_path)[:, 1])
                set_frames.extend(files[0]["frame_id"].asstr()[:])
        with _listing_every_frame(labels_tsv):
            labels += _looked_up(set_frames, read_labels(labels_tsv), "label")
            if by_length:  # per set: two sets may hold frames of one id
                lengths += _looked_up(set_frames, read_lengths(labels_tsv), "length")
    virus_scores = np.concatenate(virus_scores)
    metrics = evaluate_scores(labels, virus_scores, lengths=lengths if by_length else None)
    write_metrics(metrics, metrics_tsv)
    calibrated = classifier_calibration(classifier_path)
    if random:
        log.warning(RANDOM_ENCODERS)
    plot_evaluation(
        labels,
        virus_scores,
        figure_svg,
        f"{Path(classifier_path).name} on {len(labels)} frames"
        + (" (RANDOM encoders: the metrics mean nothing)" if random else ""),
        calibrated=None if calibrated is None else calibrated.apply(virus_scores),
    )
    return metrics
