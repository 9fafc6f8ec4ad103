"""DNABERT-S (the DNABERT-2 "MosaicBERT" architecture, SPEC §3) over packed batches, with its
tokenizer read by the `tokenizers` library and its pooling. models.checkpoints reads its Hugging
Face directory.

Post-LayerNorm BERT layers with ALiBi instead of position embeddings and a gated GELU MLP.
"""

import itertools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from .architectures import DNABERT_S_TOKENIZER
from .attention import rows_for
from .packing import TokenStore, segment_mean

# sequences tokenized at a time: the tokenizer's Encoding objects (their tokens' strings and
# more, kilobytes each) of one block at a time, not of a whole shard; four times as many held
# more memory (benchmarks/results/2026-12-04-cpu-phase-memory.txt) and took no less time
ENCODE_AT_ONCE = 16384


def alibi_slopes(heads):
    """ALiBi head slopes as DNABERT-2 computes them: the geometric series of the nearest lower
    power of two, then every other slope of the series for twice that many heads."""

    def series(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    power = 2 ** math.floor(math.log2(heads))
    slopes = series(power) + series(2 * power)[0::2][: heads - power]
    return torch.tensor(slopes, dtype=torch.float32)


class Layer(nn.Module):
    """x = LN(x + Wo·Attn(Wqkv·x)); x = LN(x + wo(gelu(g) * u)) with [g, u] = gated_layers(x)."""

    # the elementwise work and products after the attention kernel, which models.compile
    # compiles on a GPU (Wqkv before it is one matrix product, nothing to fuse)
    COMPILED = ("output_and_mlp",)

    def __init__(self, cfg):
        super().__init__()
        self.heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        self.intermediate = cfg.intermediate_size
        self.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.attention_out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.gated_layers = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.mlp_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x, attention):
        q, k, v = self.Wqkv(x).view(x.shape[0], 3, self.heads, self.head_dim).unbind(1)
        attended = attention(q, k, v, self.head_dim**-0.5)
        return self.output_and_mlp(x, attended)

    def output_and_mlp(self, x, attended):
        """LN(x + the attention's output projection), then the gated MLP and its LN."""
        x = self.attention_norm(x + self.attention_out(attended.reshape(x.shape)))
        gate, up = self.gated_layers(x).split(self.intermediate, dim=-1)
        return self.mlp_norm(x + self.wo(F.gelu(gate) * up))


class DNABertS(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.embedding_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, batch):
        """Last-layer hidden states [T, H] of a packed batch of token ids."""
        x = self.word_embeddings(batch.tokens) + self.token_type_embeddings.weight[0]
        x = self.embedding_norm(x)
        rows = rows_for(batch, x.dtype, alibi_slopes(self.cfg.num_attention_heads).to(x.device))
        x = rows.pad(x)
        for layer in self.layers:
            x = layer(x, rows)
        x = rows.unpad(x)
        return x


def all_token_mean(hidden, batch):
    """Mean over every token of each sequence, [CLS] and [SEP] included, as the original took
    it (one sequence at a time, no mask): [B, H] float32."""
    return segment_mean(hidden, batch)


def load_tokenizer(directory):
    """A DNABERT-S directory's tokenizer.json, with the fixed padding and truncation to 2000 that
    the file enables switched off (the original tokenized one sequence at a time, untruncated)."""
    tokenizer = Tokenizer.from_file(str(Path(directory) / DNABERT_S_TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def tokenize_all(tokenizer, sequences):
    """[CLS] + BPE tokens + [SEP] for each sequence, in one TokenStore (Rust threads do the
    work, ENCODE_AT_ONCE sequences at a time)."""
    blocks = []
    for start in range(0, len(sequences), ENCODE_AT_ONCE):
        block = sequences[start : start + ENCODE_AT_ONCE]
        ids = [encoding.ids for encoding in tokenizer.encode_batch_fast(block)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(lengths.sum()))
        blocks.append(TokenStore.back_to_back(flat, lengths))
    return TokenStore.concatenate(blocks)


def most_tokens(bases):
    """The most tokens a sequence of `bases` letters takes: each BPE token spans a letter or
    more ([UNK] one letter it does not know), with [CLS] and [SEP] around them."""
    return bases + 2
