"""ESM-2 (fair-esm's architecture, SPEC §4) over packed batches, its tokenizer and pooling.
models.checkpoints reads its fair-esm checkpoints."""

import esm
import numpy as np
import torch
from torch import nn

from .attention import rows_for
from .packing import TokenStore, segment_mean

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
# The original's truncation_seq_length. Its batch converter does not truncate: the model
# attends over the whole protein, and only the mean is taken over residues 1..1024 (SPEC §4).
MEAN_RESIDUES = 1024
MASK_RATIO_TRAIN = 0.15 * 0.8  # token-dropout rescale: embeddings are multiplied by 0.88


def rotary_tables(positions, inv_freq):
    """cos and sin [T, 1, Dh] in float32 for rotary embeddings at `positions`, from the
    checkpoint's frequencies [Dh/2] as fair-esm computes them: fp32 products of fp32 values."""
    angles = positions.float()[:, None] * inv_freq.float()[None, :]
    angles = torch.cat((angles, angles), dim=-1)[:, None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    first, second = x.float().chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return (x.float() * cos + rotated * sin).to(x.dtype)


class Block(nn.Module):
    """Pre-LayerNorm transformer layer: x + Attn(LN(x)), then x + FFN(LN(x)), exact GELU."""

    # the elementwise work and products on either side of the attention kernel, which
    # models.compile compiles on a GPU; the kernel itself stays outside compiled code
    COMPILED = ("attention_inputs", "output_and_mlp")

    def __init__(self, cfg):
        super().__init__()
        self.heads, self.head_dim = cfg.attention_heads, cfg.head_dim
        self.self_attn_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)
        self.out_proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.fc1 = nn.Linear(cfg.embed_dim, 4 * cfg.embed_dim)
        self.fc2 = nn.Linear(4 * cfg.embed_dim, cfg.embed_dim)
        self.activation = nn.GELU()  # exact; models.fp8 moves it into fc2's quantization

    def forward(self, x, cos, sin, attention):
        q, k, v = self.attention_inputs(x, cos, sin)
        attended = attention(q, k, v, self.head_dim**-0.5)
        return self.output_and_mlp(x, attended)

    def attention_inputs(self, x, cos, sin):
        """q, k and v [T, H, Dh] of LN(x), q and k rotated."""
        qkv = self.qkv(self.self_attn_layer_norm(x))
        q, k, v = qkv.view(x.shape[0], 3, self.heads, self.head_dim).unbind(1)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def output_and_mlp(self, x, attended):
        """The residual stream after the attention's output projection and the FFN."""
        x = x + self.out_proj(attended.reshape(x.shape))
        return x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))


class ESM2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(
            len(ALPHABET), cfg.embed_dim, padding_idx=ALPHABET.padding_idx
        )
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.emb_layer_norm_after = nn.LayerNorm(cfg.embed_dim)
        self.register_buffer("rotary_inv_freq", torch.empty(cfg.head_dim // 2))

    def _apply(self, fn, recurse=True):
        """Moving or casting the model moves the rotary frequencies but keeps their dtype and
        values: casting them to bf16 would round the fp16 values fair-esm rotates with."""
        frequencies = self.rotary_inv_freq
        super()._apply(fn, recurse)
        self.rotary_inv_freq = frequencies.to(self.rotary_inv_freq.device)
        return self

    def forward(self, batch):
        """Final hidden states (after the last LayerNorm) [T, D] of a packed batch of tokens."""
        x = self.embed_tokens(batch.tokens)
        if self.cfg.token_dropout:
            x = self._token_dropout_rescale(x, batch)
        rows = rows_for(batch, x.dtype)
        x = rows.pad(x)
        cos, sin = rotary_tables(rows.positions, self.rotary_inv_freq)
        # Each block's pieces compile apart (models.compile), so a layer's last residual add and
        # the next layer's LayerNorm are two passes over the activations, not one fused one: a
        # pass a layer, small beside its matrix products.
        for block in self.layers:
            x = block(x, cos, sin, rows)
        return self.emb_layer_norm_after(rows.unpad(x))

    @staticmethod
    def _token_dropout_rescale(x, batch):
        """fair-esm's inference rescale: zero <mask> embeddings and multiply each sequence by
        (1 - 0.15*0.8) / (1 - its fraction of <mask> tokens); 0.88 when there are none."""
        is_mask = batch.tokens == ALPHABET.mask_idx
        masked = torch.zeros(batch.n_seqs, device=x.device).index_add_(
            0, batch.seq_index, is_mask.float()
        )
        scale = (1 - MASK_RATIO_TRAIN) / (1 - masked / batch.seqlens.to(x.device))
        return x.masked_fill(is_mask[:, None], 0.0) * scale[batch.seq_index, None].to(x.dtype)


_TOKEN_OF_BYTE = np.full(256, ALPHABET.unk_idx, dtype=np.int64)
for _token, _index in ALPHABET.tok_to_idx.items():
    if len(_token) == 1:
        _TOKEN_OF_BYTE[ord(_token)] = _index


def tokenize(protein):
    """<cls> + every residue + <eos>, as the original's batch converter (no truncation) encodes
    them: sizing.esm2_tokens counts these tokens."""
    return tokenize_all([protein])[0]


def tokenize_all(proteins):
    """tokenize() of each protein, in one TokenStore: one pass over all residues, since a job
    tokenizes its shard beside the GPU's start, and per-protein work in Python holds the
    interpreter lock that the compiler needs (a shard of 260,000 reads' frames)."""
    lengths = np.fromiter(map(len, proteins), dtype=np.int64, count=len(proteins)) + 2
    ends = np.cumsum(lengths)
    tokens = np.empty(int(ends[-1]) if len(proteins) else 0, dtype=np.int32)
    residue = np.ones(len(tokens), dtype=bool)
    residue[ends - lengths] = residue[ends - 1] = False
    tokens[ends - lengths], tokens[ends - 1] = ALPHABET.cls_idx, ALPHABET.eos_idx
    tokens[residue] = _TOKEN_OF_BYTE[np.frombuffer("".join(proteins).encode("ascii"), np.uint8)]
    return TokenStore.back_to_back(tokens, lengths)


def residue_mean(hidden, batch):
    """Per-sequence mean over residues 1..min(len, 1024), <cls> and <eos> excluded: [B, D]
    float32."""
    last = (batch.cu_seqlens[1:] - 1).long()
    keep = (batch.positions > 0) & (batch.positions <= MEAN_RESIDUES)
    keep[last] = False
    return segment_mean(hidden, batch, keep)
