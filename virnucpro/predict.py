"""The classification stage: both embeddings of a shard in, the classifier's scores out."""

import logging

import numpy as np
import torch

from .atomic import atomic_open
from .damage import DamagedFile
from .h5store import open_embeddings
from .models.classifier import load_classifier, scores
from .tables import tsv_writer

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("ordinal", "frame_id", "prediction", "score1", "score2")
BLOCK_ROWS = 32768  # frames read and scored at a time: 0.4 GB of features at 3328 wide
_READ_BYTES = 1 << 20


def float32_text(value):
    """A float32 score as the original printed it: str() of a numpy float32 (shortest repr)."""
    return str(np.float32(value))


def classify_shard(dnabert_h5, esm2_h5, classifier_path, out_tsv):
    """Score every frame of a shard: features are concat(DNABERT-S, ESM-2) per frame (SPEC §5).
    The two files list the frames in one order (the embedding job writes them so); they are
    read side by side in blocks, straight into the feature matrix, so memory stays bounded
    however large the shard. Writes ordinal, frame id, prediction and the two softmax scores,
    in input order."""
    model = load_classifier(classifier_path)
    with open_embeddings(dnabert_h5) as nucleotide, open_embeddings(esm2_h5) as protein:
        ordinals = nucleotide["ordinal"][:]
        if not np.array_equal(ordinals, protein["ordinal"][:]):
            # removing one of the two makes the embedding job that writes both run again
            raise DamagedFile(
                esm2_h5,
                f"it does not list the frames of {dnabert_h5} in the same order: the two were "
                "not written by one embedding job",
            )
        frame_ids = nucleotide["frame_id"].asstr()[:]
        parts = nucleotide["embedding"], protein["embedding"]
        widths = [part.shape[1] for part in parts]
        if model.input_dim != sum(widths):
            raise ValueError(
                f"{classifier_path} takes {model.input_dim} features, but the embeddings give "
                f"{widths[0]} (DNABERT-S, {dnabert_h5}) + {widths[1]} (ESM-2, {esm2_h5}) = "
                f"{sum(widths)}: the classifier does not belong to these models"
            )
        probabilities = np.empty((len(ordinals), 2), dtype=np.float32)
        features = np.empty((min(BLOCK_ROWS, len(ordinals)), sum(widths)), dtype=np.float32)
        for start in range(0, len(ordinals), BLOCK_ROWS):
            n = min(BLOCK_ROWS, len(ordinals) - start)
            rows = np.s_[start : start + n]
            parts[0].read_direct(features, rows, np.s_[:n, : widths[0]])
            parts[1].read_direct(features, rows, np.s_[:n, widths[0] :])
            probabilities[start : start + n] = scores(model, torch.from_numpy(features[:n]))
    with atomic_open(out_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(SCORE_COLUMNS)
        for i in np.argsort(ordinals, kind="stable"):
            others, virus = probabilities[i]
            label = "virus" if virus > others else "others"
            table.writerow(
                (ordinals[i], frame_ids[i], label, float32_text(others), float32_text(virus))
            )
    log.info("%d frames scored with %s", len(ordinals), classifier_path)


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
