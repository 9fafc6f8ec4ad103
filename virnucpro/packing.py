"""Packed batches: sequences back to back in one flat token stream with cumulative lengths,
the layout variable-length attention kernels take, so no compute is spent on padding.

A batch may also name the number of rows its model computes in (`rows`): on a GPU every batch
of a job is computed in the same number of rows, so that its compiled kernels are built for
exactly the shape they run (models.attention pads to it)."""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PackedBatch:
    tokens: torch.Tensor  # [T] int64
    cu_seqlens: torch.Tensor  # [B+1] int32: sequence b is tokens[cu[b]:cu[b+1]]
    max_seqlen: int
    positions: torch.Tensor  # [T] int64: index of each token within its sequence
    seq_index: torch.Tensor  # [T] int64: the sequence each token belongs to
    rows: int | None = None  # rows the layers compute in (>= the layout's own), None: its own

    @classmethod
    def from_token_lists(cls, token_lists, rows=None):
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        if len(lengths) == 0 or lengths.min() == 0:
            raise ValueError("a packed batch needs at least one sequence and no empty one")
        starts = np.concatenate(([0], np.cumsum(lengths)))
        seq_index = np.repeat(np.arange(len(lengths)), lengths)
        return cls(
            tokens=torch.from_numpy(np.concatenate(token_lists).astype(np.int64)),
            cu_seqlens=torch.from_numpy(starts.astype(np.int32)),
            max_seqlen=int(lengths.max()),
            positions=torch.from_numpy(np.arange(starts[-1]) - starts[seq_index]),
            seq_index=torch.from_numpy(seq_index),
            rows=rows,
        )

    @property
    def n_seqs(self):
        return self.cu_seqlens.numel() - 1

    @property
    def seqlens(self):
        return self.cu_seqlens.diff()

    def pin_memory(self):
        return self._map(lambda t: t.pin_memory())

    def to(self, device, non_blocking=False):
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def _map(self, fn):
        return PackedBatch(
            fn(self.tokens),
            fn(self.cu_seqlens),
            self.max_seqlen,
            fn(self.positions),
            fn(self.seq_index),
            self.rows,
        )


def segment_mean(hidden, batch, keep=None):
    """Mean of `hidden` [T, D] over the tokens of each sequence (those where `keep` is true),
    accumulated in float32: [B, D]."""
    weight = torch.ones_like(batch.seq_index, dtype=torch.float32) if keep is None else keep.float()
    sums = torch.zeros(batch.n_seqs, hidden.shape[1], dtype=torch.float32, device=hidden.device)
    sums.index_add_(0, batch.seq_index, hidden.float() * weight[:, None])
    counts = torch.zeros(batch.n_seqs, dtype=torch.float32, device=hidden.device)
    counts.index_add_(0, batch.seq_index, weight)
    return sums / counts[:, None]
