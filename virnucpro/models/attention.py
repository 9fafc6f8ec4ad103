"""Self-attention for a batch of sequences, and the layout of the rows a model computes on.

A batch arrives packed: its tokens back to back, with cumulative lengths. `rows_for` picks
how the layers see it, by device, number format and kernel:
- PackedRows: the packed tokens as they are, for a variable-length kernel: flash-attn's (ALiBi
  included) where flash-attn is installed, else PyTorch's `varlen_attn`; a batch of sequences
  of one length (the 166-residue frames of 500 bp chunks) is viewed as a dense [B, H, L, Dh]
  block for scaled_dot_product_attention instead, which picks cuDNN's Hopper kernel.
- PaddedRows: every sequence padded to one length L (a multiple of 8, so SDPA keeps its fast
  kernels), copied once per batch, not once per layer; attention is scaled_dot_product_attention
  with a key mask plus the ALiBi bias, built once per batch. For ALiBi without flash-attn, fp32
  and the CPU. Batches hold sequences of similar length, so little is padded.

When the batch names more rows than its layout needs (`PackedBatch.rows`, one row count for
every batch of a job, so that compiled kernels see one shape), the layout appends zero rows.
In the packed layout they attend among themselves in short filler sequences, which costs
little whatever their number; the dense kernels leave them out and give them zeros. No real
row ever attends to a filler row.
"""

import functools

import torch
import torch.nn.functional as F

try:
    from flash_attn import flash_attn_varlen_func
except ImportError:  # an optional accelerator
    flash_attn_varlen_func = None

HALF = (torch.float16, torch.bfloat16)
FILLER_LENGTH = 64  # rows of one filler sequence: attention over fillers stays linear in rows


@functools.cache
def varlen_attn():
    """PyTorch's variable-length attention, None before PyTorch 2.9. Imported when a GPU first
    asks for it: its module imports the compiler's tracer, a second of every job's start where
    nothing uses it (the CPU)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def is_packed(device_type, dtype, alibi=False):
    """Whether `rows_for` gives the packed layout on this device, dtype and bias."""
    if device_type != "cuda" or dtype not in HALF:
        return False
    return flash_attn_varlen_func is not None or (not alibi and varlen_attn() is not None)


def padded_length(length):
    """The length PaddedRows pads a batch's sequences to: a multiple of 8."""
    return -(-length // 8) * 8


def rows_for(batch, dtype, alibi_slopes=None):
    """The layout a model computes `batch` in, given its dtype and ALiBi slopes (if any)."""
    if is_packed(batch.tokens.device.type, dtype, alibi_slopes is not None):
        return PackedRows(batch, alibi_slopes)
    return PaddedRows(batch, alibi_slopes, dtype)


def _check_rows(batch, needed):
    rows = batch.rows or needed
    if rows < needed:
        raise ValueError(f"a batch of {needed} rows cannot be computed in {rows}")
    return rows


class PackedRows:
    def __init__(self, batch, alibi_slopes=None):
        self.batch, self.alibi_slopes = batch, alibi_slopes
        self.tokens = batch.tokens.numel()
        self.rows = _check_rows(batch, self.tokens)
        self.uniform = batch.max_seqlen * batch.n_seqs == self.tokens
        self.positions = F.pad(batch.positions, (0, self.rows - self.tokens))
        self.cu_seqlens, self.max_seqlen = batch.cu_seqlens, batch.max_seqlen
        if self.rows > self.tokens:
            starts = torch.arange(self.tokens, self.rows, FILLER_LENGTH, device=batch.tokens.device)
            end = batch.cu_seqlens.new_full((1,), self.rows)
            self.cu_seqlens = torch.cat((batch.cu_seqlens, starts[1:].to(end.dtype), end))
            self.max_seqlen = max(self.max_seqlen, FILLER_LENGTH)

    def pad(self, x):
        return F.pad(x, (0, 0) * (x.dim() - 1) + (0, self.rows - self.tokens))  # rows: dim 0

    def unpad(self, x):
        return x[: self.tokens]

    def __call__(self, q, k, v, scale):
        cu, length = self.cu_seqlens, self.max_seqlen
        if flash_attn_varlen_func is not None:
            return flash_attn_varlen_func(
                q, k, v, cu, cu, length, length, softmax_scale=scale, alibi_slopes=self.alibi_slopes
            )
        if self.uniform:
            return _dense_sdpa(q, k, v, self.batch.n_seqs, self.batch.max_seqlen, scale)
        return varlen_attn()(q, k, v, cu, cu, length, length, scale=scale)


class PaddedRows:
    def __init__(self, batch, alibi_slopes, dtype):
        device = batch.tokens.device
        self.n_seqs, self.length = batch.n_seqs, padded_length(batch.max_seqlen)
        self.rows = _check_rows(batch, self.n_seqs * self.length)
        self.slots = batch.seq_index * self.length + batch.positions
        positions = torch.arange(self.length, device=device).repeat(self.n_seqs)
        self.positions = F.pad(positions, (0, self.rows - positions.numel()))
        valid = torch.zeros(self.n_seqs * self.length, dtype=torch.bool, device=device)
        valid[self.slots] = True
        valid = valid.view(self.n_seqs, 1, 1, self.length)
        if alibi_slopes is None:
            self.mask = valid
        else:
            where = torch.arange(self.length, device=device)
            distance = (where[:, None] - where[None, :]).abs().to(dtype)
            bias = -alibi_slopes.to(dtype)[:, None, None] * distance
            self.mask = bias.unsqueeze(0).masked_fill(~valid, float("-inf"))

    def pad(self, x):
        rows = x.new_zeros(self.rows, *x.shape[1:])
        rows[self.slots] = x
        return rows

    def unpad(self, x):
        return x[self.slots]

    def __call__(self, q, k, v, scale):
        return _dense_sdpa(q, k, v, self.n_seqs, self.length, scale, self.mask)


def _dense_sdpa(q, k, v, n_seqs, length, scale, mask=None):
    """Attention over the first n_seqs * length rows of [R, H, Dh], which hold n_seqs sequences
    of `length` rows each; rows past them (padding to R) get zeros."""
    heads, head_dim = q.shape[1:]
    used = n_seqs * length

    def dense(x):
        return x[:used].view(n_seqs, length, heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(dense(q), dense(k), dense(v), attn_mask=mask, scale=scale)
    rows = q.new_empty(q.shape)
    rows[:used].view(n_seqs, length, heads, head_dim).copy_(out.transpose(1, 2))
    rows[used:].zero_()
    return rows
