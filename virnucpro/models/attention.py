"""Self-attention over a packed batch: q, k, v are [T, H, Dh] for all sequences back to back,
and no token attends across a sequence boundary.

The implementation is chosen by device. On the CPU the packed stream is scattered into a
padded [B, H, L, Dh] block for PyTorch's scaled_dot_product_attention with a key mask (and
ALiBi as an additive bias), then gathered back.
"""

import torch
import torch.nn.functional as F


def packed_attention(q, k, v, batch, scale, alibi_slopes=None):
    """Attention within each sequence of `batch`; ALiBi bias -slope_h * |i - j| if given."""
    return padded_sdpa(q, k, v, batch, scale, alibi_slopes)


def padded_sdpa(q, k, v, batch, scale, alibi_slopes=None):
    n_tokens, heads, head_dim = q.shape
    length = batch.max_seqlen
    slots = batch.seq_index * length + batch.positions

    def pad(x):
        block = x.new_zeros(batch.n_seqs * length, heads, head_dim)
        block[slots] = x
        return block.view(batch.n_seqs, length, heads, head_dim).transpose(1, 2)

    valid = torch.zeros(batch.n_seqs * length, dtype=torch.bool, device=q.device)
    valid[slots] = True
    valid = valid.view(batch.n_seqs, 1, 1, length)
    if alibi_slopes is None:
        mask = valid
    else:
        where = torch.arange(length, device=q.device)
        distance = (where[:, None] - where[None, :]).abs().to(q.dtype)
        bias = -alibi_slopes.to(q.dtype)[:, None, None] * distance
        mask = bias.unsqueeze(0).masked_fill(~valid, float("-inf"))
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask, scale=scale)
    return out.transpose(1, 2).reshape(-1, heads, head_dim)[slots]
