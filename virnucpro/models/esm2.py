"""ESM-2 (fair-esm's architecture, SPEC §4) over packed batches, with the loader for fair-esm
checkpoint files.

fair-esm's checkpoints keep q, k and v as separate projections; the loader fuses them into one
`qkv` projection so the forward pass does one matrix product. They also store the rotary
frequencies (`inv_freq`, one copy per layer, fp16 in the published files), which fair-esm
rotates with; the loader keeps them, as one buffer, rather than recomputing them in fp32.
"""

import re
from pathlib import Path

import esm
import numpy as np
import torch
from torch import nn

from ..packing import TokenStore, segment_mean
from . import pickled
from .architectures import ESM2Config, check_esm2
from .attention import rows_for
from .compile import compiled_on_cuda
from .loading import REFETCH, check_tensors, materialize, meta_shapes, on_device

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
    """Pre-LayerNorm transformer layer: x + Attn(LN(x)), then x + FFN(LN(x)), exact GELU.

    ESM2.forward runs it in two halves around the attention kernel, so that everything between
    one layer's attention and the next one's (out_proj, FFN, residual adds, the next layer
    norm, q/k/v projection and rotary) compiles into one piece: the residual add and the next
    layer norm then fuse into one pass over the activations."""

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
        self._register_load_state_dict_pre_hook(self._from_fair_esm)

    @staticmethod
    def _from_fair_esm(state_dict, prefix, *_):
        """Rename fair-esm's `self_attn.{q,k,v,out}_proj` and fuse q, k, v into `qkv`."""
        attn = prefix + "self_attn."
        if attn + "q_proj.weight" not in state_dict:
            return
        for kind in ("weight", "bias"):
            parts = [state_dict.pop(f"{attn}{p}_proj.{kind}") for p in "qkv"]
            state_dict[f"{prefix}qkv.{kind}"] = torch.cat(parts)
            state_dict[f"{prefix}out_proj.{kind}"] = state_dict.pop(f"{attn}out_proj.{kind}")


def _attention_inputs(block, x, cos, sin):
    qkv = block.qkv(block.self_attn_layer_norm(x))
    q, k, v = qkv.view(x.shape[0], 3, block.heads, block.head_dim).unbind(1)
    return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v


def _attention_output_and_mlp(block, x, attended):
    x = x + block.out_proj(attended.reshape(x.shape))
    return x + block.fc2(block.activation(block.fc1(block.final_layer_norm(x))))


def _between_layers(block, following, x, attended, cos, sin):
    x = _attention_output_and_mlp(block, x, attended)
    return x, *_attention_inputs(following, x, cos, sin)


first_attention_inputs = compiled_on_cuda(_attention_inputs)
between_layers = compiled_on_cuda(_between_layers)
last_attention_output_and_mlp = compiled_on_cuda(_attention_output_and_mlp)


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
        scale = self.cfg.head_dim**-0.5
        layers = self.layers
        q, k, v = first_attention_inputs(layers[0], x, cos, sin)
        for layer, following in zip(layers[:-1], layers[1:], strict=True):
            x, q, k, v = between_layers(layer, following, x, rows(q, k, v, scale), cos, sin)
        x = last_attention_output_and_mlp(layers[-1], x, rows(q, k, v, scale))
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


# ---- checkpoints -------------------------------------------------------------------------

_FAIR_ESM_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_NOT_USED = re.compile(r"^(lm_head\.|contact_head\.)")


def read_fair_esm(path):
    """Config, state dict (fair-esm names, memory-mapped) and our metadata of a fair-esm ESM-2
    checkpoint, read as data (models.pickled): its config checked against the published sizes
    and its tensors' names and shapes against fair-esm's own ESM-2 of that config before any is
    mapped. ValueError names the file and what is wrong."""
    path = Path(path)
    try:
        data = pickled.read_pickle(path, {"argparse.Namespace"})  # cfg['model'] is one
        cfg = _config(data, path.stem)
        refs = pickled.tensor_dict(data.get("model"), "its 'model'")
        refs = {_FAIR_ESM_PREFIX.sub("", name): ref for name, ref in refs.items()}
        found = {name: (ref.shape, ref.storage.dtype) for name, ref in refs.items()}
        check_tensors(found, meta_shapes(lambda: _fair_esm(cfg)), f"fair-esm's {cfg}")
        extra = data.get("virnucpro", {})
        if not isinstance(extra, dict):
            raise pickled.Refused("its 'virnucpro' is not a dict")
        used = {name: ref for name, ref in refs.items() if not _NOT_USED.match(name)}
        state = pickled.read_tensors(path, used)
    except pickled.Refused as error:
        raise ValueError(
            f"refusing to load {path}: {error}. It is not a fair-esm ESM-2 checkpoint as "
            f"published. {REFETCH}"
        ) from None
    state["rotary_inv_freq"] = _rotary_frequencies(state, cfg, path)
    return cfg, state, extra


def _config(data, name):
    """The ESM2Config of a checkpoint's pickle (its cfg['model'], an argparse.Namespace),
    checked against the published ESM-2 sizes (architectures.check_esm2)."""
    try:
        args = data["cfg"]["model"].state
        cfg = ESM2Config(
            num_layers=args["encoder_layers"],
            embed_dim=args["encoder_embed_dim"],
            attention_heads=args["encoder_attention_heads"],
            token_dropout=args["token_dropout"],
        )
    except (KeyError, TypeError, AttributeError):
        raise pickled.Refused(
            "it has no cfg['model'] with encoder_layers, encoder_embed_dim, "
            "encoder_attention_heads and token_dropout"
        ) from None
    try:
        check_esm2(cfg, name)
    except ValueError as error:
        raise pickled.Refused(str(error)) from None
    return cfg


def _fair_esm(cfg):
    """fair-esm's own ESM-2 of `cfg`, whose state dict the published checkpoints hold."""
    return esm.model.esm2.ESM2(
        cfg.num_layers, cfg.embed_dim, cfg.attention_heads, ALPHABET, cfg.token_dropout
    )


def _rotary_frequencies(state, cfg, path):
    """Take the per-layer `rot_emb.inv_freq` buffers out of a fair-esm state dict and return
    them as one tensor. fair-esm rotates each layer with its own; every published file holds
    the same values in all of them, and a file that does not is refused rather than guessed."""
    names = [f"layers.{i}.self_attn.rot_emb.inv_freq" for i in range(cfg.num_layers)]
    missing = [name for name in names if name not in state]
    if missing:
        raise ValueError(
            f"{path} has no rotary frequencies ({missing[0]}): fair-esm ESM-2 checkpoints store "
            "them in every layer. Use the published esm2_*.pt file."
        )
    first, *others = (state.pop(name) for name in names)
    if any(not torch.equal(first, other) for other in others):
        raise ValueError(
            f"{path}: the layers' rotary frequencies (rot_emb.inv_freq) differ, which no "
            "published ESM-2 checkpoint does; virnucpro rotates every layer alike. Use the "
            "published esm2_*.pt file."
        )
    return first


def read_model(path):
    """ESM-2 from a fair-esm checkpoint (.pt) on the CPU, memory-mapped, in the checkpoint's
    dtype (q, k and v fused). Returns (model, info): info holds the model's name and whether
    its weights are random."""
    path = Path(path)
    cfg, state, extra = read_fair_esm(path)
    info = {
        "name": path.stem,
        "random_weights": bool(extra.get("random_weights", False)),
        "path": path,
    }
    return materialize(lambda: ESM2(cfg), state, path), info


def load_model(path, device="cpu", dtype=torch.float32):
    """read_model's ESM-2 on `device` in `dtype` (loading.on_device): about a second for ESM-2
    3B from the page cache (benchmarks/results/2026-11-22-h200-job-start.txt)."""
    model, info = read_model(path)
    return on_device(model, device, dtype, path), info
