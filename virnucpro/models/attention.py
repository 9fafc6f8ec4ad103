"""Self-attention over a packed batch: q, k, v are [T, H, Dh] for all sequences back to back,
and no token attends across a sequence boundary.

The kernel is chosen by device and number format:
- CUDA, fp16/bf16, flash-attn installed: flash-attn's variable-length kernel (ALiBi included);
- CUDA, fp16/bf16, no ALiBi: PyTorch's variable-length flash attention (`varlen_attn`);
- otherwise (the CPU, fp32, or ALiBi without flash-attn): the packed stream is scattered into a
  padded [B, H, L, Dh] block for scaled_dot_product_attention with a key mask (plus the ALiBi
  bias), built once per batch and shared by every layer, then gathered back. Batches hold
  frames of similar length, so the padding is small.
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


class PackedAttention:
    """Attention for one packed batch, called by every layer of a model."""

    def __init__(self, batch, alibi_slopes=None):
        self.batch = batch
        self.alibi_slopes = alibi_slopes
        self._padding = None

    def __call__(self, q, k, v, scale):
        if q.is_cuda and q.dtype in HALF:
            if flash_attn_varlen_func is not None:
                return self._flash_attn(q, k, v, scale)
            if self.alibi_slopes is None and varlen_attn is not None:
                batch = self.batch
                return varlen_attn(
                    q,
                    k,
                    v,
                    batch.cu_seqlens,
                    batch.cu_seqlens,
                    batch.max_seqlen,
                    batch.max_seqlen,
                    scale=scale,
                )
        return self._padded_sdpa(q, k, v, scale)

    def _flash_attn(self, q, k, v, scale):
        batch = self.batch
        return flash_attn_varlen_func(
            q,
            k,
            v,
            batch.cu_seqlens,
            batch.cu_seqlens,
            batch.max_seqlen,
            batch.max_seqlen,
            softmax_scale=scale,
            alibi_slopes=self.alibi_slopes,
        )

    def _padded_sdpa(self, q, k, v, scale):
        slots, mask = self._padded_layout(q.dtype)
        batch, (_, heads, head_dim) = self.batch, q.shape
        length = batch.max_seqlen

        def pad(x):
            block = x.new_zeros(batch.n_seqs * length, heads, head_dim)
            block[slots] = x
            return block.view(batch.n_seqs, length, heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask, scale=scale)
        return out.transpose(1, 2).reshape(-1, heads, head_dim)[slots]

    def _padded_layout(self, dtype):
        """Where each token sits in the padded block, and the mask: key padding, plus the
        ALiBi bias -slope_h * |i - j| when the model uses it."""
        if self._padding is None:
            batch, device = self.batch, self.batch.tokens.device
            length = batch.max_seqlen
            slots = batch.seq_index * length + batch.positions
            valid = torch.zeros(batch.n_seqs * length, dtype=torch.bool, device=device)
            valid[slots] = True
            valid = valid.view(batch.n_seqs, 1, 1, length)
            if self.alibi_slopes is None:
                mask = valid
            else:
                where = torch.arange(length, device=device)
                distance = (where[:, None] - where[None, :]).abs().to(dtype)
                bias = -self.alibi_slopes.to(dtype)[:, None, None] * distance
                mask = bias.unsqueeze(0).masked_fill(~valid, float("-inf"))
            self._padding = slots, mask
        return self._padding
