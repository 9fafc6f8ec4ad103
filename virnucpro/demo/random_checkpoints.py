"""Checkpoints with random weights in exactly the formats of the published models, for the
demo, the tests and the benchmarks (the real weights cannot be fetched everywhere).

- ESM-2: a fair-esm checkpoint (`{"model": ..., "cfg": {"model": Namespace}}`, fp16 tensors,
  keys under `encoder.sentence_encoder.`) plus its `-contact-regression.pt` file, so fair-esm's
  own `load_model_and_alphabet_local` reads it.
- DNABERT-S: a Hugging Face directory (config.json, pytorch_model.bin or model.safetensors,
  tokenizer.json and its two small companions).
- Classifier: a whole `MLPClassifier` pickled from `__main__`, as train.py saved it.

Every file records that its weights are random, and the outputs built from them say so.
"""

import argparse
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import safetensors.torch
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from ..io.atomic import atomic_path
from ..models.architectures import DNABertConfig
from ..models.classifier import MLPClassifier

SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]


def _random_value(name, shape, generator):
    """Scaled normal weights, norm scales near 1 and positive variances, small biases."""
    noise = torch.randn(shape, generator=generator, device=generator.device)
    if name.endswith(
        (
            "norm.weight",
            "LayerNorm.weight",
            "layernorm.weight",
            "layer_norm.weight",
            "bn1.weight",
            "running_var",
        )
    ):
        return 1 + 0.1 * noise.abs()
    if len(shape) >= 2:
        return noise / shape[-1] ** 0.5
    return 0.1 * noise


def random_state(shapes, seed, dtype=torch.float32, device="cpu"):
    """A state dict of random CPU tensors {name: shape} from one seed, drawn one tensor at a time
    (a full-size ESM-2 never exists in float32) on `device` (a GPU draws 3B values in seconds)."""
    generator = torch.Generator(device).manual_seed(seed)
    return {
        name: _random_value(name, shape, generator).to(dtype).cpu()
        for name, shape in sorted(shapes.items())
    }


def write_esm2(
    path, num_layers, embed_dim, attention_heads, seed=0, dtype=torch.float16, device="cpu"
):
    """A fair-esm ESM-2 checkpoint with random weights, and its contact-regression file."""
    import esm  # fair-esm defines the module whose state dict the file holds

    path = Path(path)
    with torch.device("meta"):
        names = esm.model.esm2.ESM2(num_layers, embed_dim, attention_heads, "ESM-1b", True)
    shapes = {
        k: tuple(v.shape) for k, v in names.state_dict().items() if not k.endswith("inv_freq")
    }
    state = random_state(shapes, seed, dtype, device)
    state["lm_head.weight"] = state["embed_tokens.weight"]  # tied in ESM-2, as in real files
    # fair-esm checkpoints carry every layer's rotary frequencies (the values its
    # RotaryEmbedding starts with), stored in the file's dtype like every other tensor: fp16 in
    # the published files
    inv_freq = esm.rotary_embedding.RotaryEmbedding(embed_dim // attention_heads).inv_freq
    for layer in range(num_layers):
        state[f"layers.{layer}.self_attn.rot_emb.inv_freq"] = inv_freq.to(dtype)
    body, regression = {}, {}
    for name, tensor in state.items():
        if name.startswith("contact_head."):
            regression[name] = tensor
        elif name.startswith("lm_head."):
            body["encoder." + name] = tensor
        else:
            body["encoder.sentence_encoder." + name] = tensor
    cfg = argparse.Namespace(
        encoder_layers=num_layers,
        encoder_embed_dim=embed_dim,
        encoder_attention_heads=attention_heads,
        token_dropout=True,
    )
    data = {
        "model": body,
        "cfg": {"model": cfg},
        "virnucpro": {"random_weights": True, "seed": seed},
    }
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    with atomic_path(path.with_name(path.stem + "-contact-regression.pt")) as tmp:
        torch.save({"model": regression}, tmp)
    return path


def train_dna_tokenizer(sequences, vocab_size):
    """A small DNA BPE tokenizer laid out like DNABERT-S's tokenizer.json: special tokens at
    ids 0-4, whitespace pre-tokenizer, [CLS] ... [SEP] template, and the fixed padding and
    truncation to 2000 that the real file switches on."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=list("ACGT"),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sequences, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    tokenizer.enable_padding(pad_id=3, pad_token="[PAD]", length=2000)
    tokenizer.enable_truncation(max_length=2000)
    return tokenizer


def write_dnabert_s(
    directory, cfg, tokenizer_json, seed=0, weights="pytorch_model.bin", prefix="", device="cpu"
):
    """A DNABERT-S model directory with random weights under Hugging Face's names.

    `tokenizer_json` is a tokenizer.json to copy, or a trained `tokenizers.Tokenizer`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = _dnabert_state(cfg, seed, device)
    state = {prefix + k: v for k, v in state.items()}
    with atomic_path(directory / weights) as tmp:
        if weights.endswith(".safetensors"):
            safetensors.torch.save_file(state, tmp)
        else:
            torch.save(state, tmp)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "attention_probs_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.1,
        "alibi_starting_size": 512,
        "max_position_embeddings": 512,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        **{k: getattr(cfg, k) for k in DNABertConfig.__dataclass_fields__},
        "virnucpro_random_weights": True,
    }
    with atomic_path(directory / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    with atomic_path(directory / "tokenizer.json") as tmp:
        if isinstance(tokenizer_json, Tokenizer):
            tokenizer_json.save(str(tmp))
        else:
            shutil.copyfile(tokenizer_json, tmp)
    specials = dict(
        zip(
            ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token"),
            SPECIAL_TOKENS,
            strict=True,
        )
    )
    for name, content in (
        ("special_tokens_map.json", specials),
        ("tokenizer_config.json", {**specials, "tokenizer_class": "PreTrainedTokenizerFast"}),
    ):
        with atomic_path(directory / name) as tmp:
            tmp.write_text(json.dumps(content, indent=2) + "\n")
    return directory


def _dnabert_state(cfg, seed, device):
    """Random weights for every tensor of a DNABERT-2 BertModel, under its own names."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.num_hidden_layers):
        layer = f"encoder.layer.{n}."
        shapes |= {
            layer + "attention.self.Wqkv.weight": (3 * h, h),
            layer + "attention.self.Wqkv.bias": (3 * h,),
            layer + "attention.output.dense.weight": (h, h),
            layer + "attention.output.dense.bias": (h,),
            layer + "attention.output.LayerNorm.weight": (h,),
            layer + "attention.output.LayerNorm.bias": (h,),
            layer + "mlp.gated_layers.weight": (2 * i, h),
            layer + "mlp.wo.weight": (h, i),
            layer + "mlp.wo.bias": (h,),
            layer + "mlp.layernorm.weight": (h,),
            layer + "mlp.layernorm.bias": (h,),
        }
    shapes |= {"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)}
    return random_state(shapes, seed, device=device)


@contextmanager
def _as_main(cls):
    """Make `cls` importable as __main__.<its name> while pickling, as a training script's
    own class is."""
    main = sys.modules["__main__"]
    script_class = type(cls.__name__, (cls,), {"__module__": "__main__"})
    missing = object()
    previous = getattr(main, cls.__name__, missing)
    setattr(main, cls.__name__, script_class)
    try:
        yield script_class
    finally:
        if previous is missing:
            delattr(main, cls.__name__)
        else:
            setattr(main, cls.__name__, previous)


def write_pickled_classifier(path, input_dim, seed=0):
    """A whole MLPClassifier with random weights, pickled from __main__ like train.py's."""
    with _as_main(MLPClassifier) as script_class:
        model = script_class(input_dim)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if v.is_floating_point()}
        model.load_state_dict(random_state(shapes, seed), strict=False)
        model.eval()
        with atomic_path(path) as tmp:
            torch.save(model, tmp)
    return Path(path)
