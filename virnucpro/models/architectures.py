"""The shapes of the published embedding models, apart from the models themselves so that
whatever checks files (the classifier's loader, the downloads) need not import the models'
code."""

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class ESM2Config:
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True

    @property
    def head_dim(self):
        return self.embed_dim // self.attention_heads


# Every ESM-2 size fair-esm publishes, by checkpoint name
ESM2_PRESETS = {
    "esm2_t6_8M_UR50D": ESM2Config(6, 320, 20),
    "esm2_t12_35M_UR50D": ESM2Config(12, 480, 20),
    "esm2_t30_150M_UR50D": ESM2Config(30, 640, 20),
    "esm2_t33_650M_UR50D": ESM2Config(33, 1280, 20),
    "esm2_t36_3B_UR50D": ESM2Config(36, 2560, 40),
    "esm2_t48_15B_UR50D": ESM2Config(48, 5120, 40),
}


@dataclass(frozen=True)
class DNABertConfig:
    """DNABERT-S's config.json; the defaults are the published model's."""

    vocab_size: int = 4096
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act {raw['hidden_act']!r}; DNABERT-S uses 'gelu'")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
