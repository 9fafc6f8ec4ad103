"""The shapes of the published embedding models, apart from the models themselves so that
whatever checks files (the loaders, the downloads) need not import the models' code; and the
limits a model file's config is held to, so that no file can make a loader build a model
larger than the published ones."""

import json
from dataclasses import dataclass
from pathlib import Path


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
# The largest published ESM-2 in each dimension (15B in all three)
ESM2_LARGEST = ESM2Config(
    num_layers=max(cfg.num_layers for cfg in ESM2_PRESETS.values()),
    embed_dim=max(cfg.embed_dim for cfg in ESM2_PRESETS.values()),
    attention_heads=max(cfg.attention_heads for cfg in ESM2_PRESETS.values()),
)
# The most bytes of a DNABERT-S config.json read: the published one takes 1 kB
MAX_CONFIG_BYTES = 1 << 16
# The files of a DNABERT-S Hugging Face directory; of the weights, the first there is read
DNABERT_S_CONFIG, DNABERT_S_TOKENIZER = "config.json", "tokenizer.json"
DNABERT_S_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def dnabert_s_weights(directory):
    """The weights file of a DNABERT-S directory (the first of DNABERT_S_WEIGHTS there), or None
    where it holds none."""
    found = (Path(directory) / name for name in DNABERT_S_WEIGHTS)
    return next((path for path in found if path.exists()), None)


def check_esm2(cfg, name):
    """ValueError, saying what is wrong, unless `cfg` is that of the published ESM-2 `name` (a
    checkpoint's file name) where it names one, else whole numbers no larger than the largest
    published ESM-2's, with whole heads of an even width (rotary embeddings turn pairs)."""
    if name in ESM2_PRESETS and cfg != ESM2_PRESETS[name]:
        raise ValueError(f"it is named as the published {name}, {ESM2_PRESETS[name]}, but is {cfg}")
    _check_sizes(cfg, ESM2_LARGEST, ("num_layers", "embed_dim", "attention_heads"), "ESM-2")
    if cfg.embed_dim % (2 * cfg.attention_heads):
        raise ValueError(
            f"its embed_dim {cfg.embed_dim} is not {cfg.attention_heads} heads of an even width"
        )
    if type(cfg.token_dropout) is not bool:
        raise ValueError(f"its token_dropout is {cfg.token_dropout!r:.40}, not true or false")


def _check_sizes(cfg, largest, fields, model):
    for field in fields:
        value, most = getattr(cfg, field), getattr(largest, field)
        if type(value) is not int or not 1 <= value <= most:
            raise ValueError(
                f"its {field} is {value!r:.40}, where no published {model} has more than {most}"
            )


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
        """The config of a config.json; ValueError, saying what is wrong, where it is not of
        DNABERT-S's architecture or is larger than the published DNABERT-S in a dimension
        (DNABERT-2's is the same)."""
        with open(path, "rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"it is more than {MAX_CONFIG_BYTES} bytes, more than a config's")
        try:
            raw = json.loads(text)
        except RecursionError:
            raise ValueError("it nests deeper than a config does") from None
        if not isinstance(raw, dict):
            raise ValueError("it is not a JSON object")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"its hidden_act is {raw['hidden_act']!r:.40}; DNABERT-S uses 'gelu'")
        cfg = cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        sizes = [name for name in cls.__dataclass_fields__ if name != "layer_norm_eps"]
        _check_sizes(cfg, cls(), sizes, "DNABERT-S")
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(
                f"its hidden_size {cfg.hidden_size} is not {cfg.num_attention_heads} whole heads"
            )
        eps = cfg.layer_norm_eps
        if type(eps) not in (int, float) or not 0 < eps < 1:
            raise ValueError(f"its layer_norm_eps is {eps!r:.40}, not a small positive number")
        return cfg
