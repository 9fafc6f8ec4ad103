"""The classification stage: both embeddings of a shard in, the classifier's scores out."""

import logging

import numpy as np
import torch

from .atomic import atomic_open
from .h5store import read_embeddings
from .models.classifier import load_classifier, scores
from .tables import tsv_writer

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("ordinal", "frame_id", "prediction", "score1", "score2")
BATCH_ROWS = 65536


def float32_text(value):
    """A float32 score as the original printed it: str() of a numpy float32 (shortest repr)."""
    return str(np.float32(value))


def _in_input_order(ordinals, frame_ids, vectors):
    """An embedding file's rows sorted by ordinal (each job stores them in its own order)."""
    order = np.argsort(ordinals, kind="stable")
    return ordinals[order], [frame_ids[i] for i in order], vectors[order]


def classify_shard(dnabert_h5, esm2_h5, classifier_path, out_tsv):
    """Score every frame of a shard: features are concat(DNABERT-S, ESM-2) per frame (SPEC §5).
    Writes ordinal, frame id, prediction and the two softmax scores, in input order."""
    nucleotide = _in_input_order(*read_embeddings(dnabert_h5)[:3])
    protein = _in_input_order(*read_embeddings(esm2_h5)[:3])
    if nucleotide[1] != protein[1] or not np.array_equal(nucleotide[0], protein[0]):
        raise ValueError(f"{dnabert_h5} and {esm2_h5} do not hold the same frames")
    (ordinals, frame_ids, nucleotide_vectors), protein_vectors = nucleotide, protein[2]
    model = load_classifier(classifier_path)
    width = nucleotide_vectors.shape[1] + protein_vectors.shape[1]
    if model.input_dim != width:
        raise ValueError(
            f"{classifier_path} takes {model.input_dim} features, but the embeddings give "
            f"{nucleotide_vectors.shape[1]} (DNABERT-S, {dnabert_h5}) + {protein_vectors.shape[1]} "
            f"(ESM-2, {esm2_h5}) = {width}: the classifier does not belong to these models"
        )
    features = np.concatenate([nucleotide_vectors, protein_vectors], axis=1)
    probabilities = np.empty((len(features), 2), dtype=np.float32)
    for start in range(0, len(features), BATCH_ROWS):
        block = torch.from_numpy(features[start : start + BATCH_ROWS])
        probabilities[start : start + BATCH_ROWS] = scores(model, block).numpy()
    with atomic_open(out_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(SCORE_COLUMNS)
        rows = zip(ordinals, frame_ids, probabilities, strict=True)
        for ordinal, frame_id, (others, virus) in rows:
            label = "virus" if virus > others else "others"
            table.writerow((ordinal, frame_id, label, float32_text(others), float32_text(virus)))
    log.info("%d frames scored with %s", len(frame_ids), classifier_path)
