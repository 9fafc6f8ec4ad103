"""The classifier over a shard's two embeddings, in blocks of BLOCK_ROWS frames in file order:
either read from the stored files (`score_files`) or as ESM-2's vectors arrive in the
embedding job (`StreamingScorer`). Both score the same blocks with the same code, so a shard's
scores do not depend on which of them computed it."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .models.classifier import scores

BLOCK_ROWS = 32768  # frames scored at a time: 0.4 GB of features at 3328 wide


def check_width(model, widths, classifier_path, files):
    """ValueError unless the classifier takes the two models' features side by side."""
    if model.input_dim != sum(widths):
        raise ValueError(
            f"{classifier_path} takes {model.input_dim} features, but the embeddings give "
            f"{widths[0]} (DNABERT-S, {files[0]}) + {widths[1]} (ESM-2, {files[1]}) = "
            f"{sum(widths)}: the classifier does not belong to these models"
        )


def score_files(model, nucleotide, protein):
    """[N, 2] float32 probabilities from two open embedding datasets, read side by side in
    blocks straight into the feature matrix, so memory stays bounded however large the shard."""
    frames, widths = len(nucleotide), (nucleotide.shape[1], protein.shape[1])
    probabilities = np.empty((frames, 2), dtype=np.float32)
    features = np.empty((min(BLOCK_ROWS, frames), sum(widths)), dtype=np.float32)
    for start in range(0, frames, BLOCK_ROWS):
        n = min(BLOCK_ROWS, frames - start)
        rows = np.s_[start : start + n]
        nucleotide.read_direct(features, rows, np.s_[:n, : widths[0]])
        protein.read_direct(features, rows, np.s_[:n, widths[0] :])
        probabilities[rows] = scores(model, torch.from_numpy(features[:n]))
    return probabilities


class StreamingScorer:
    """Scores a shard inside its embedding job: `add(start, vectors)` takes ESM-2's vectors in
    file order as the GPU produces them, and each full block is scored on the CPU in a thread
    while the GPU goes on, beside the DNABERT-S vectors already computed. The classification
    stage then reads the scores instead of the two files' 3,328 floats per frame."""

    def __init__(self, model, nucleotide_vectors):
        self.model, self.nucleotide = model, nucleotide_vectors
        self.probabilities = np.empty((len(nucleotide_vectors), 2), dtype=np.float32)
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

    def _score(self, start, protein):
        rows = np.s_[start : start + len(protein)]
        features = np.concatenate([self.nucleotide[rows], protein], axis=1)
        self.probabilities[rows] = scores(self.model, torch.from_numpy(features))

    def result(self):
        """Every frame's [N, 2] probabilities, once the last vectors have been added."""
        with self.pool:
            for block in self.blocks:
                block.result()
        if self.queued != len(self.probabilities):
            arrived = self.queued + self.pending_rows
            raise ValueError(f"vectors of {arrived} of {len(self.probabilities)} frames arrived")
        return self.probabilities
