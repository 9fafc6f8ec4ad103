"""Packed batches: sequences back to back in one flat token stream with cumulative lengths,
the layout variable-length attention kernels take, so no compute is spent on padding.

A batch may also name the number of rows its model computes in (`rows`): on a GPU every batch
of a job is computed in the same number of rows, so that its compiled kernels are built for
exactly the shape they run (models.attention pads to it).

A job holds its shard's tokens in a TokenStore: every sequence back to back in one flat array,
a few bytes a token, instead of an array object per frame (about 100 bytes each, before its
tokens: 500 MB for the 5 million frames of a shard of reads)."""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TokenStore:
    """Token sequences in one flat array: sequence i is flat[starts[i] : starts[i] + lengths[i]].
    Selecting or reordering sequences (`store[indices]`) copies their index arrays, not their
    tokens; `store[i]` is one sequence, a view."""

    flat: np.ndarray  # [T] int32
    starts: np.ndarray  # [N] int64
    lengths: np.ndarray  # [N] int64

    @classmethod
    def back_to_back(cls, flat, lengths):
        """The store of sequences of `lengths` laid back to back in `flat`."""
        lengths = np.asarray(lengths, dtype=np.int64)
        return cls(np.asarray(flat, dtype=np.int32), np.cumsum(lengths) - lengths, lengths)

    @classmethod
    def from_arrays(cls, arrays):
        lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        return cls.back_to_back(np.concatenate([np.empty(0, np.int32), *arrays]), lengths)

    @classmethod
    def of(cls, tokens):
        """`tokens` as a store: a store as it is, a list of arrays (tests, benchmarks) packed."""
        return tokens if isinstance(tokens, cls) else cls.from_arrays(tokens)

    @classmethod
    def concatenate(cls, stores):
        """One store of the sequences of a list of stores, in order (the blocks of a shard),
        their tokens back to back. The list is emptied as its stores are copied, so that a
        shard's tokens are held once, not twice, while they are joined."""
        flat = np.empty(sum(len(store.flat) for store in stores), dtype=np.int32)
        starts, lengths, at = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
        stores.reverse()
        while stores:
            store = stores.pop()
            flat[at : at + len(store.flat)] = store.flat
            starts.append(store.starts + at)
            lengths.append(store.lengths)
            at += len(store.flat)
        return cls(flat, np.concatenate(starts), np.concatenate(lengths))

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            return self.flat[self.starts[index] : self.starts[index] + self.lengths[index]]
        return TokenStore(self.flat, self.starts[index], self.lengths[index])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def batch(self, rows=None):
        """All the sequences as one PackedBatch, computed in `rows` rows if given."""
        lengths = self.lengths
        if len(lengths) == 0 or lengths.min() == 0:
            raise ValueError("a packed batch needs at least one sequence and no empty one")
        cu_seqlens = np.concatenate(([0], np.cumsum(lengths)))
        seq_index = np.repeat(np.arange(len(lengths)), lengths)
        positions = np.arange(cu_seqlens[-1]) - cu_seqlens[seq_index]
        return PackedBatch(
            tokens=torch.from_numpy(self.flat[self.starts[seq_index] + positions].astype(np.int64)),
            cu_seqlens=torch.from_numpy(cu_seqlens.astype(np.int32)),
            max_seqlen=int(lengths.max()),
            positions=torch.from_numpy(positions),
            seq_index=torch.from_numpy(seq_index),
            rows=rows,
        )


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
        return TokenStore.from_arrays(token_lists).batch(rows)

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
