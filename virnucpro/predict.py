"""The classification: each shard's scores in input (ordinal) order, from the scores its embedding
job stored when they came from this classifier file, else from the stored embeddings
(scoring.py)."""

import hashlib
import logging

import numpy as np

from .damage import DamagedFile
from .h5store import open_shard

log = logging.getLogger(__name__)

# ESM-2 file attribute: the SHA-256 of the classifier file its `scores` dataset came from
SCORED_WITH = "scores_classifier_sha256"


def float32_texts(values):
    """Float32 scores as the original printed them: str() of a numpy float32 (shortest repr).
    A loop of str(): numpy's own astype(str) gives the same text, but is slower."""
    return list(map(str, np.asarray(values, dtype=np.float32)))


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
        # imported here: torch takes seconds to import, and the common case needs none of it
        import torch

        from .models.checkpoints import load_classifier
        from .scoring import check_width, score_files

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
