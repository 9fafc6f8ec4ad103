"""The one place where frames are scored: the classifier over a shard's embeddings (one file per
model, its features side by side in the models' order), in blocks of BLOCK_ROWS frames in file
order. The embedding job scores the last model's vectors as they arrive (`job_scorer`'s
StreamingScorer) and stores the scores beside them (`store_scores`); the aggregation
(`ShardScorer`) reads those where they came from its classifier file, and otherwise scores the
stored vectors (`score_files`). Both score the same blocks with the same code, of the vectors
as the files store them (float16 or float32, h5store) taken as float32, so a shard's scores do
not depend on which of them computed it. A block with a NaN or infinite score raises
NonFiniteScores, naming the classifier file: such a frame would be called `others`, and the
aggregation fail far from here.

torch is imported where frames are scored: an aggregation that reads the stored scores needs
none of it, and its import takes seconds."""

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..io.classifier_header import EMBEDDING_MODELS_KEY, WIDTHS_KEY, classifier_metadata
from ..io.damage import DamagedFile
from ..io.h5store import open_shard

log = logging.getLogger(__name__)

# ESM-2 file attribute: the SHA-256 of the classifier file its `scores` dataset came from
SCORED_WITH = "scores_classifier_sha256"

BLOCK_ROWS = 32768  # frames scored at a time: 0.4 GB of features at 3328 wide


class NonFiniteScores(ValueError):
    """A frame scored NaN or infinite, and whether its features or the classifier are why."""


def check_width(model, widths, classifier_path, files, names=None):
    """ValueError unless the classifier takes the models' features side by side: `widths`,
    each model's vector width, and `files`, its embedding file, in features order. A trained
    classifier's header also gives each model's width, which must match one by one, and name
    (train_run): a different one among `names` (the files' models, where known) is logged, not
    refused, as the name is the checkpoint's file or folder name, which a move changes."""
    given = " + ".join(f"{w} ({f})" for w, f in zip(widths, files, strict=True))
    if model.input_dim != sum(widths):
        raise ValueError(
            f"{classifier_path} takes {model.input_dim} features, but the embeddings give "
            f"{given} = {sum(widths)}: the classifier does not belong to these models"
        )
    header = classifier_metadata(classifier_path)
    if WIDTHS_KEY not in header:
        return  # the original's classifiers, and ours saved without training metadata
    trained = [int(width) for width in header[WIDTHS_KEY].split(",")]
    trained_on = list(json.loads(header[EMBEDDING_MODELS_KEY]).values())
    described = ", ".join(f"{n} ({w} wide)" for n, w in zip(trained_on, trained, strict=True))
    if trained != list(widths):
        raise ValueError(
            f"{classifier_path} was trained on features of {described}, but the embeddings "
            f"give {given}: point models.esm2 and models.dnabert_s at the checkpoints it was "
            "trained with, or train a classifier on these models"
        )
    if names is not None and list(names) != trained_on:
        log.warning(
            "%s was trained on features of %s; these are of %s, of the same widths: the same "
            "models if only their files were renamed",
            classifier_path,
            described,
            ", ".join(names),
        )


def score_files(model, datasets, classifier_path):
    """[N, 2] float32 probabilities from open embedding datasets (one per model, in features
    order) with the classifier `model` of the file `classifier_path`, read side by side in
    blocks straight into the feature matrix, so memory stays bounded however large the
    shard."""
    frames = len(datasets[0])
    edges = np.cumsum([0] + [dataset.shape[1] for dataset in datasets])
    probabilities = np.empty((frames, 2), dtype=np.float32)
    features = np.empty((min(BLOCK_ROWS, frames), edges[-1]), dtype=np.float32)
    for start in range(0, frames, BLOCK_ROWS):
        n = min(BLOCK_ROWS, frames - start)
        rows = np.s_[start : start + n]
        for dataset, left, right in zip(datasets, edges, edges[1:], strict=False):
            dataset.read_direct(features, rows, np.s_[:n, left:right])
        probabilities[rows] = _scored(model, features[:n], classifier_path, start)
    return probabilities


class StreamingScorer:
    """Scores a shard inside its embedding job: `add(start, vectors)` takes the last model's
    vectors in file order as the GPU produces them and its file stores them, and each full
    block is scored on the CPU in a thread while the GPU goes on, beside the `earlier` models'
    vectors already computed (a list, empty when the last model is the only one), with the
    classifier `model` of the file `classifier_path`. The classification stage then reads the
    scores instead of the files' features."""

    def __init__(self, model, classifier_path, earlier, frames):
        self.model, self.classifier_path, self.earlier = model, classifier_path, earlier
        self.probabilities = np.empty((frames, 2), dtype=np.float32)
        self.pending, self.pending_rows, self.queued = [], 0, 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="score")
        self.blocks = []

    def add(self, start, vectors):
        expected = self.queued + self.pending_rows
        if start != expected:
            raise ValueError(f"vectors from row {start}, expected them from row {expected}")
        self.pending.append(vectors)
        self.pending_rows += len(vectors)
        while self.pending_rows >= BLOCK_ROWS or (
            self.pending_rows and self.queued + self.pending_rows == len(self.probabilities)
        ):
            held = np.concatenate(self.pending)
            n = min(BLOCK_ROWS, len(held))
            self.pending = [held[n:]] if n < len(held) else []
            self.pending_rows -= n
            self.blocks.append(self.pool.submit(self._score, self.queued, held[:n]))
            self.queued += n

    def _score(self, start, last):
        rows = np.s_[start : start + len(last)]
        blocks = [vectors[rows] for vectors in self.earlier] + [last]
        features = np.concatenate(blocks, axis=1, dtype=np.float32)  # float16 converts exactly
        self.probabilities[rows] = _scored(self.model, features, self.classifier_path, start)

    def result(self):
        """Every frame's [N, 2] probabilities, once the last vectors have been added."""
        with self.pool:
            for block in self.blocks:
                block.result()
        if self.queued != len(self.probabilities):
            arrived = self.queued + self.pending_rows
            raise ValueError(f"vectors of {arrived} of {len(self.probabilities)} frames arrived")
        return self.probabilities


def _scored(model, features, classifier_path, first_row):
    """The scores of a block of features (float32, the shard's rows from `first_row` in the
    files' order); NonFiniteScores naming the classifier file where one is NaN or infinite."""
    import torch

    from ..models.classifier import scores

    probabilities = scores(model, torch.from_numpy(features)).numpy()
    finite = np.isfinite(probabilities).all(axis=1)
    if finite.all():
        return probabilities
    row = int(np.argmin(finite))
    if np.isfinite(features[row]).all():
        cause = (
            "its features there are finite, so the classifier is damaged: point the sample's "
            "classifier (or models.classifier_300/500) at a good copy"
        )
    else:
        cause = (
            "so are its features there: remove the shard's embedding files and run the same "
            "command again"
        )
    raise NonFiniteScores(
        f"{classifier_path} scores frame {first_row + row} of the shard (in its files' order) "
        f"NaN or infinite; {cause}"
    )


def classifier_digest(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ShardScorer:
    """Scores a sample's shards with the classifier file `classifier_path`, on `threads` CPU
    threads where they are computed here (torch's default: every core)."""

    def __init__(self, classifier_path, threads=None):
        self.path, self.threads = classifier_path, threads
        self.digest = classifier_digest(classifier_path)
        self.model = None  # loaded for the first shard whose stored scores do not fit

    def check(self, embedding_h5s, first_ordinal, frames):
        """The attributes of a shard's embedding files (one per model, in features order),
        once checked whole and holding the `frames` frames of ordinals first_ordinal.. (in any
        order); DamagedFile names the first that is not."""
        with open_shard(embedding_h5s) as files:
            offsets = files[0]["ordinal"][:] - first_ordinal
            held = np.zeros(frames, dtype=bool)
            inside = offsets[(offsets >= 0) & (offsets < frames)]
            held[inside] = True
            if len(offsets) != frames or len(inside) != frames or not held.all():
                raise DamagedFile(
                    embedding_h5s[0],
                    f"it holds {len(offsets)} frames, not the {frames} frames of ordinals "
                    f"{first_ordinal} to {first_ordinal + frames - 1} its shard lists",
                )
            return [dict(h5.attrs) for h5 in files]

    def scores(self, embedding_h5s, first_ordinal):
        """[frames, 2] float32 softmax scores (others, virus) of a checked shard, in ordinal
        order from `first_ordinal`. Its files list the frames in one order (the embedding job
        writes them so). Stored scores that are not all finite (an earlier version stored a
        damaged classifier's) are computed again, which names what is wrong."""
        with open_shard(embedding_h5s) as files:
            ordinals = files[0]["ordinal"][:]
            last = files[-1]  # the file the embedding job stored its scores in
            stored = last["scores"][:] if last.attrs.get(SCORED_WITH) == self.digest else None
            if stored is not None and np.isfinite(stored).all():
                probabilities, source = stored, "stored by the embedding job"
            else:
                probabilities, source = self._score_stored(files), "here"
        log.info(
            "%s: %d frames scored with %s (computed %s)",
            embedding_h5s[-1],
            len(ordinals),
            self.path,
            source,
        )
        in_order = np.empty_like(probabilities)
        in_order[ordinals - first_ordinal] = probabilities
        return in_order

    def _score_stored(self, files):
        """Probabilities from the stored embeddings, for scores the embedding job did not
        compute with this classifier (a classifier changed since, or one it could not read)."""
        import torch

        from ..models.checkpoints import load_classifier

        if self.model is None:
            self.model = load_classifier(self.path)
        widths = [h5["embedding"].shape[1] for h5 in files]
        names = [str(h5.attrs["model"]) for h5 in files]
        check_width(self.model, widths, self.path, [h5.filename for h5 in files], names)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads or threads)
        try:
            return score_files(self.model, [h5["embedding"] for h5 in files], self.path)
        finally:
            torch.set_num_threads(threads)  # as the caller had it


def job_classifier(path):
    """(model, SHA-256) of the classifier to score with, or None: a classifier this job cannot
    read is the classification stage's to report, so the embeddings are kept regardless."""
    if path is None:
        return None
    from ..models.checkpoints import load_classifier

    try:
        return load_classifier(path), classifier_digest(path)
    except (OSError, ValueError) as error:
        log.warning("not scoring in this job (the classification stage will): %s", error)
        return None


def job_scorer(classifier, path, earlier, last, outputs, frames):
    """A StreamingScorer for the shard's frames, or None where there is no classifier that
    fits: `earlier`, the vectors of the models before the last, which is `last` (an
    encoders.Encoder); `outputs`, the job's {kind: file}; `frames`, how many the shard holds."""
    if classifier is None:
        return None
    widths = [vectors.shape[1] for vectors in earlier] + [last.dim]
    try:
        check_width(classifier[0], widths, path, list(outputs.values()))
    except ValueError as error:
        log.warning("not scoring in this job (the classification stage will): %s", error)
        return None
    return StreamingScorer(classifier[0], path, earlier, frames)


def store_scores(out, scorer, digest):
    """The scorer's scores into the last model's file, unless a frame scored NaN or infinite:
    its features are finite (the engine and the file see to it), so the classifier is at fault,
    and that is the classification stage's to report, as for one this job cannot read."""
    try:
        probabilities = scorer.result()
    except NonFiniteScores as error:
        log.warning("not storing this job's scores (the classification stage will stop): %s", error)
        return
    out.store("scores", probabilities)
    out.attrs[SCORED_WITH] = digest
