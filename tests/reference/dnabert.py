"""A plain, padded DNABERT-S forward pass written from SPEC §3 alone, on Hugging Face weight
names, independently of virnucpro's packed module: explicit [B, H, L, L] scores, an additive
ALiBi bias, masked softmax. Embedding = mean of the last layer over a sequence's tokens."""

import math

import torch
import torch.nn.functional as F


def slopes_for_12_heads():
    """SPEC §3: 2^-1 ... 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5."""
    return torch.tensor([2.0**-k for k in range(1, 9)] + [2.0 ** -(k + 0.5) for k in range(4)])


def forward(state, ids, mask, heads, eps=1e-12):
    """Last-layer hidden states [B, L, H] of padded token ids [B, L] (mask: 1 for real tokens)."""
    state = {k.removeprefix("bert."): v.float() for k, v in state.items()}
    batch, length = ids.shape
    x = (
        state["embeddings.word_embeddings.weight"][ids]
        + state["embeddings.token_type_embeddings.weight"][0]
    )
    x = F.layer_norm(
        x,
        x.shape[-1:],
        state["embeddings.LayerNorm.weight"],
        state["embeddings.LayerNorm.bias"],
        eps,
    )
    width = x.shape[-1]
    head_dim = width // heads
    if heads != 12:
        raise ValueError("the SPEC gives ALiBi slopes for 12 heads, as DNABERT-S has")
    slopes = slopes_for_12_heads().to(ids.device)
    position = torch.arange(length, device=ids.device)
    alibi = -slopes[:, None, None] * (position[None, :] - position[:, None]).abs()
    key_mask = torch.where(mask.bool(), 0.0, float("-inf"))[:, None, None, :]
    n_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    for n in range(n_layers):
        w = {
            k.removeprefix(f"encoder.layer.{n}."): v
            for k, v in state.items()
            if k.startswith(f"encoder.layer.{n}.")
        }
        qkv = x @ w["attention.self.Wqkv.weight"].T + w["attention.self.Wqkv.bias"]
        q, k, v = (
            t.view(batch, length, heads, head_dim).transpose(1, 2) for t in qkv.split(width, -1)
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + alibi + key_mask
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = F.layer_norm(
            x + attended @ w["attention.output.dense.weight"].T + w["attention.output.dense.bias"],
            (width,),
            w["attention.output.LayerNorm.weight"],
            w["attention.output.LayerNorm.bias"],
            eps,
        )
        gated = x @ w["mlp.gated_layers.weight"].T
        half = gated.shape[-1] // 2
        mlp = (F.gelu(gated[..., :half]) * gated[..., half:]) @ w["mlp.wo.weight"].T + w[
            "mlp.wo.bias"
        ]
        x = F.layer_norm(x + mlp, (width,), w["mlp.layernorm.weight"], w["mlp.layernorm.bias"], eps)
    return x


def embed_one(state, ids, heads):
    """The original's embedding of one sequence: mean over all its tokens, no padding."""
    ids = torch.as_tensor(ids)[None]
    return forward(state, ids, torch.ones_like(ids), heads)[0].mean(0)
