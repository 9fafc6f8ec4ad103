"""DNABERT-S (the DNABERT-2 "MosaicBERT" architecture, SPEC §3) over packed batches, loaded
from a Hugging Face model directory, with its tokenizer read by the `tokenizers` library.

Post-LayerNorm BERT layers with ALiBi instead of position embeddings and a gated GELU MLP.
"""

import itertools
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from ..packing import TokenStore, segment_mean
from . import pickled
from .architectures import (
    DNABERT_S_CONFIG,
    DNABERT_S_TOKENIZER,
    DNABERT_S_WEIGHTS,
    DNABertConfig,
    dnabert_s_weights,
)
from .attention import rows_for
from .compile import compiled_on_cuda
from .loading import (
    REFETCH,
    SAFETENSORS_DTYPES,
    check_tensors,
    materialize,
    meta_shapes,
    on_device,
)

log = logging.getLogger(__name__)

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
        return attention_output_and_mlp(self, x, attention(q, k, v, self.head_dim**-0.5))


def _attention_output_and_mlp(layer, x, attended):
    x = layer.attention_norm(x + layer.attention_out(attended.reshape(x.shape)))
    gate, up = layer.gated_layers(x).split(layer.intermediate, dim=-1)
    return layer.mlp_norm(x + layer.wo(F.gelu(gate) * up))


attention_output_and_mlp = compiled_on_cuda(_attention_output_and_mlp)


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


# ---- checkpoints -------------------------------------------------------------------------

# Hugging Face (DNABERT-2 bert_layers.py) names -> ours; the rest of a name is kept.
_RENAMES = [
    (re.compile(r"^embeddings\.LayerNorm\."), "embedding_norm."),
    (re.compile(r"^embeddings\."), ""),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.self\.Wqkv\."), r"layers.\1.Wqkv."),
    (
        re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\."),
        r"layers.\1.attention_out.",
    ),
    (
        re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\."),
        r"layers.\1.attention_norm.",
    ),
    (re.compile(r"^encoder\.layer\.(\d+)\.mlp\.gated_layers\."), r"layers.\1.gated_layers."),
    (re.compile(r"^encoder\.layer\.(\d+)\.mlp\.wo\."), r"layers.\1.wo."),
    (re.compile(r"^encoder\.layer\.(\d+)\.mlp\.layernorm\."), r"layers.\1.mlp_norm."),
]
# Heads a DNABERT-S directory may also carry, which the embedding does not use.
_NOT_USED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$)")


def _our_name(name):
    for pattern, replacement in _RENAMES:
        renamed, hits = pattern.subn(replacement, name)
        if hits:
            return renamed
    return None


def weights_path(directory):
    """The weights file of a model directory (architectures.dnabert_s_weights)."""
    path = dnabert_s_weights(directory)
    if path is None:
        raise FileNotFoundError(
            f"{directory} holds no weights: expected one of {', '.join(DNABERT_S_WEIGHTS)}"
        )
    return path


def read_weights_file(path, cfg):
    """The state dict of a weights file, renamed to our modules (a `bert.` prefix dropped), its
    tensors' names and shapes checked against DNABERT-S of `cfg` before any is read:
    memory-mapped from a pytorch_model.bin (models.pickled), read from a model.safetensors.
    Raises pickled.Refused."""
    if path.suffix == ".safetensors":
        with safetensors.safe_open(path, framework="pt") as handle:
            names = handle.keys()
            found = {
                name: (tuple(part.get_shape()), SAFETENSORS_DTYPES.get(part.get_dtype()))
                for name, part in ((name, handle.get_slice(name)) for name in names)
            }
            ours = _checked_names(found, cfg)
            return {mine: handle.get_tensor(theirs) for mine, theirs in ours.items()}
    refs = pickled.tensor_dict(pickled.read_pickle(path), "its pickle")
    ours = _checked_names({name: (ref.shape, ref.storage.dtype) for name, ref in refs.items()}, cfg)
    return pickled.read_tensors(path, {mine: refs[theirs] for mine, theirs in ours.items()})


def _checked_names(found, cfg):
    """{our name: the file's} of the tensors the embedding uses among `found` ({the file's name:
    (shape, dtype)}), each checked to be a tensor of DNABERT-S of `cfg` of its shape."""
    ours, unknown = {}, []
    for name in found:
        short = name.removeprefix("bert.")
        if _NOT_USED.match(short):
            continue
        mine = _our_name(short)
        if mine is None:
            unknown.append(name)
        else:
            ours[mine] = name
    if unknown:
        raise pickled.Refused(f"its weights {', '.join(unknown[:8])} are not part of DNABERT-S")
    expected = meta_shapes(lambda: DNABertS(cfg))
    check_tensors({mine: found[theirs] for mine, theirs in ours.items()}, expected, cfg)
    return ours


def read_model(directory):
    """DNABERT-S from a Hugging Face directory (config.json and weights) on the CPU, in the
    checkpoint's dtype, its config checked against the published DNABERT-S (architectures) and
    its weights' names and shapes against the config before any is read. Returns (model,
    info); ValueError names the file and what is wrong."""
    directory = Path(directory)
    config = directory / DNABERT_S_CONFIG
    try:
        cfg = DNABertConfig.from_json(config)
    except ValueError as error:
        raise ValueError(f"refusing to load {config}: {error}. {REFETCH}") from None
    path = weights_path(directory)
    try:
        state = read_weights_file(path, cfg)
    except (pickled.Refused, safetensors.SafetensorError) as error:
        raise ValueError(
            f"refusing to load {path}: {error}. It is not the DNABERT-S its config.json "
            f"describes. {REFETCH}"
        ) from None
    model = materialize(lambda: DNABertS(cfg), state, path)
    with open(config, encoding="utf-8") as handle:
        random_weights = bool(json.load(handle).get("virnucpro_random_weights", False))
    info = {"name": directory.name, "random_weights": random_weights, "path": path}
    return model, info


def load_model(directory, device="cpu", dtype=torch.float32):
    """read_model's DNABERT-S on `device` in `dtype` (loading.on_device). Returns (model,
    info)."""
    model, info = read_model(directory)
    return on_device(model, device, dtype, info["path"]), info


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
