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
"""

import torch
import torch.nn.functional as F

try:
    from flash_attn import flash_attn_varlen_func
except ImportError:  # an optional accelerator
    flash_attn_varlen_func = None
try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # PyTorch before 2.9
    varlen_attn = None

HALF = (torch.float16, torch.bfloat16)


def rows_for(batch, dtype, alibi_slopes=None):
    """The layout a model computes `batch` in, given its dtype and ALiBi slopes (if any)."""
    varlen_kernel = flash_attn_varlen_func is not None or (alibi_slopes is None and varlen_attn)
    if batch.tokens.is_cuda and dtype in HALF and varlen_kernel:
        return PackedRows(batch, alibi_slopes)
    return PaddedRows(batch, alibi_slopes, dtype)


class PackedRows:
    def __init__(self, batch, alibi_slopes=None):
        self.batch, self.alibi_slopes = batch, alibi_slopes
        self.positions = batch.positions
        self.uniform = batch.max_seqlen * batch.n_seqs == batch.tokens.numel()

    def pad(self, x):
        return x

    def unpad(self, x):
        return x

    def __call__(self, q, k, v, scale):
        batch = self.batch
        length = batch.max_seqlen
        if flash_attn_varlen_func is not None:
            return flash_attn_varlen_func(
                q,
                k,
                v,
                batch.cu_seqlens,
                batch.cu_seqlens,
                length,
                length,
                softmax_scale=scale,
                alibi_slopes=self.alibi_slopes,
            )
        if self.uniform:
            return _dense_sdpa(q, k, v, batch.n_seqs, length, scale)
        return varlen_attn(q, k, v, batch.cu_seqlens, batch.cu_seqlens, length, length, scale=scale)


class PaddedRows:
    def __init__(self, batch, alibi_slopes, dtype):
        device = batch.tokens.device
        self.n_seqs, self.length = batch.n_seqs, -(-batch.max_seqlen // 8) * 8
        self.slots = batch.seq_index * self.length + batch.positions
        self.positions = torch.arange(self.length, device=device).repeat(self.n_seqs)
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
        rows = x.new_zeros(self.n_seqs * self.length, *x.shape[1:])
        rows[self.slots] = x
        return rows

    def unpad(self, x):
        return x[self.slots]

    def __call__(self, q, k, v, scale):
        return _dense_sdpa(q, k, v, self.n_seqs, self.length, scale, self.mask)


def _dense_sdpa(q, k, v, n_seqs, length, scale, mask=None):
    """Attention over rows that hold n_seqs sequences of `length` rows each: [B*L, H, Dh]."""
    heads, head_dim = q.shape[1:]

    def dense(x):
        return x.view(n_seqs, length, heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(dense(q), dense(k), dense(v), attn_mask=mask, scale=scale)
    return out.transpose(1, 2).reshape(n_seqs * length, heads, head_dim)
