"""The classification stage: a shard's scores table, from the scores its embedding job stored
when they came from this classifier file, else from the stored embeddings (scoring.py)."""

import hashlib
import logging

import numpy as np

from .atomic import atomic_open
from .damage import DamagedFile
from .h5store import open_shard
from .tables import tsv_writer

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("ordinal", "frame_id", "prediction", "score1", "score2")
# ESM-2 file attribute: the SHA-256 of the classifier file its `scores` dataset came from
SCORED_WITH = "scores_classifier_sha256"
_READ_BYTES = 1 << 20


def float32_text(value):
    """A float32 score as the original printed it: str() of a numpy float32 (shortest repr)."""
    return str(np.float32(value))


def classifier_digest(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def classify_shard(embedding_h5s, classifier_path, out_tsv, threads=None):
    """Score every frame of a shard: features are its embedding files' vectors side by side
    (`embedding_h5s`, one per model in features order: DNABERT-S, then ESM-2; SPEC §5). The
    files list the frames in one order (the embedding job writes them so). Writes ordinal,
    frame id, prediction and the two softmax scores, in input order. `threads`: the CPU threads
    for scoring here (torch's default: every core)."""
    with open_shard(embedding_h5s) as files:
        ordinals = files[0]["ordinal"][:]
        frame_ids = files[0]["frame_id"].asstr()[:]
        last = files[-1]  # the file the embedding job stored its scores in
        if last.attrs.get(SCORED_WITH) == classifier_digest(classifier_path):
            probabilities, source = last["scores"][:], "stored by the embedding job"
        else:
            probabilities, source = _score_stored(classifier_path, files, threads), "here"
    with atomic_open(out_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(SCORE_COLUMNS)
        for i in np.argsort(ordinals, kind="stable"):
            others, virus = probabilities[i]
            label = "virus" if virus > others else "others"
            table.writerow(
                (ordinals[i], frame_ids[i], label, float32_text(others), float32_text(virus))
            )
    log.info("%d frames scored with %s (computed %s)", len(ordinals), classifier_path, source)


def _score_stored(classifier_path, files, threads):
    """Probabilities from the stored embeddings, for scores the embedding job did not compute
    with this classifier (a classifier changed since, or one it could not read)."""
    # imported here: torch takes seconds to import, and the common case needs none of it
    import torch

    from .models.classifier import load_classifier
    from .scoring import check_width, score_files

    if threads:
        torch.set_num_threads(threads)
    model = load_classifier(classifier_path)
    widths = [h5["embedding"].shape[1] for h5 in files]
    names = [str(h5.attrs["model"]) for h5 in files]
    check_width(model, widths, classifier_path, [h5.filename for h5 in files], names)
    return score_files(model, [h5["embedding"] for h5 in files])


def check_scores(path, frames):
    """Raise DamagedFile unless the scores table `path` holds its header and `frames` whole
    rows: a table cut short loses rows, or ends inside one."""
    with open(path, "rb") as handle:
        header = handle.readline()
        rows, last = 0, b"\n"
        while block := handle.read(_READ_BYTES):
            rows, last = rows + block.count(b"\n"), block[-1:]
    if header != ("\t".join(SCORE_COLUMNS) + "\n").encode():
        raise DamagedFile(path, f"its first line is not the header {SCORE_COLUMNS}")
    if rows != frames or last != b"\n":
        whole = "whole rows" if last == b"\n" else "whole rows and part of one"
        raise DamagedFile(path, f"it holds {rows} {whole}, but its shard has {frames} frames")
