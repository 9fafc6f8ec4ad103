"""Reading the models' files: ESM-2's fair-esm checkpoint, DNABERT-S's Hugging Face
directory and the classifier's .pth or .safetensors. Pickles are read as data (models.pickled),
and each file's tensors are checked by name, shape and dtype against the model they are to fill
before any is read, so that no file can make a loader run code or allocate more than the
largest published model takes.

fair-esm's checkpoints keep q, k and v as separate projections; the ESM-2 loader fuses them into
one `qkv` projection so the forward pass does one matrix product. They also store the rotary
frequencies (`inv_freq`, one copy per layer, fp16 in the published files), which fair-esm
rotates with; the loader keeps them, as one buffer, rather than recomputing them in fp32.
"""

import json
import re
from pathlib import Path

import esm
import safetensors
import torch

from ..io.classifier_header import FORMAT_KEY, SAFETENSORS_FORMAT, is_safetensors
from . import pickled
from .architectures import (
    DNABERT_S_CONFIG,
    DNABERT_S_WEIGHTS,
    ESM2_PRESETS,
    DNABertConfig,
    ESM2Config,
    check_esm2,
    dnabert_s_weights,
)
from .classifier import HIDDEN_DIM, N_CLASSES, MLPClassifier
from .dnabert_s import DNABertS
from .esm2 import ALPHABET, ESM2

# ---- every model's: its tensors checked, put into the module, moved to its device -----------

READ_BYTES = 1 << 24
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# safetensors' names of the dtypes a model file of ours may hold (BatchNorm counts in int64)
SAFETENSORS_DTYPES = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "I64": torch.int64,
}
# What to do about an embedding model's file that is refused
REFETCH = (
    "Nothing in it was run. Remove it and run again (the download_model rule fetches the "
    "published file), or point the models key in config/config.yaml at a good copy."
)


def meta_shapes(make_module):
    """{name: shape} of the state dict of `make_module()`, built on the meta device (nothing
    allocated, no random initialisation computed)."""
    with torch.device("meta"):
        return {name: tuple(t.shape) for name, t in make_module().state_dict().items()}


def check_tensors(found, expected, model):
    """Refused unless each tensor of `found` ({name: (shape, dtype)}) is one of `expected`
    ({name: shape}, of the module `model` describes), of its shape and a float dtype."""
    for name, (shape, dtype) in found.items():
        if name not in expected:
            raise pickled.Refused(f"its {name} is not a tensor of {model}")
        if shape != expected[name] or dtype not in WEIGHT_DTYPES:
            raise pickled.Refused(
                f"its {name} is {dtype} {list(shape)} where {model} has a float "
                f"{list(expected[name])}"
            )


def materialize(make_module, state, path):
    """Build a module on the meta device (no random initialisation is computed or stored) and
    give it the checkpoint's tensors as they are: on the CPU, in the checkpoint's dtype, memory-
    mapped where the checkpoint was read so. The caller moves it to its device and dtype."""
    with torch.device("meta"):
        model = make_module()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(
            f"refusing to load {path}: its weights do not fit {model.cfg} ({error}). {REFETCH}"
        ) from None
    return model.eval()


def on_device(model, device, dtype, path):
    """`model` on `device` in `dtype`; ValueError naming `path` where a weight is NaN or
    infinite there. Checked after the move, on the device: there a pass over ESM-2 3B's weights
    takes milliseconds, where on the CPU it would add seconds to every job's start; and in the
    dtype the model computes in, where too large a value has become infinite."""
    model = model.to(device=device, dtype=dtype)
    named = [(name, t) for name, t in model.state_dict().items() if t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()  # one sync
    for (name, _), ok in zip(named, finite, strict=True):
        if not ok:
            raise ValueError(
                f"refusing to load {path}: its {name} holds NaN or infinite values (as "
                f"{dtype} on {device}), which no published model does. {REFETCH}"
            )
    return model


def read_through(path):
    """Read a file once, so that it is in the page cache: a memory-mapped checkpoint's tensors
    then reach the GPU from memory, not from disk, and this process keeps no copy."""
    buffer = bytearray(READ_BYTES)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass


# ---- ESM-2 ----------------------------------------------------------------------------------

_FAIR_ESM_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_ESM2_NOT_USED = re.compile(r"^(lm_head\.|contact_head\.)")


def read_fair_esm(path):
    """Config, state dict (fair-esm names, memory-mapped) and our metadata of a fair-esm ESM-2
    checkpoint, read as data (models.pickled): its config checked against the published sizes
    and its tensors' names and shapes against fair-esm's own ESM-2 of that config before any is
    mapped. ValueError names the file and what is wrong."""
    path = Path(path)
    try:
        data = pickled.read_pickle(path, {"argparse.Namespace"})  # cfg['model'] is one
        cfg = _esm2_config(data, path.stem)
        refs = pickled.tensor_dict(data.get("model"), "its 'model'")
        refs = {_FAIR_ESM_PREFIX.sub("", name): ref for name, ref in refs.items()}
        found = {name: (ref.shape, ref.storage.dtype) for name, ref in refs.items()}
        check_tensors(found, meta_shapes(lambda: _fair_esm(cfg)), f"fair-esm's {cfg}")
        extra = data.get("virnucpro", {})
        if not isinstance(extra, dict):
            raise pickled.Refused("its 'virnucpro' is not a dict")
        used = {name: ref for name, ref in refs.items() if not _ESM2_NOT_USED.match(name)}
        state = pickled.read_tensors(path, used)
    except pickled.Refused as error:
        raise ValueError(
            f"refusing to load {path}: {error}. It is not a fair-esm ESM-2 checkpoint as "
            f"published. {REFETCH}"
        ) from None
    state["rotary_inv_freq"] = _rotary_frequencies(state, cfg, path)
    return cfg, state, extra


def _esm2_config(data, name):
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


def _fuse_qkv(state, cfg):
    """Rename each layer's fair-esm `self_attn.{q,k,v,out}_proj` in place and fuse q, k, v
    into `qkv`."""
    for i in range(cfg.num_layers):
        attn = f"layers.{i}.self_attn."
        if attn + "q_proj.weight" not in state:  # refused by materialize's strict load
            continue
        for kind in ("weight", "bias"):
            parts = [state.pop(f"{attn}{p}_proj.{kind}") for p in "qkv"]
            state[f"layers.{i}.qkv.{kind}"] = torch.cat(parts)
            state[f"layers.{i}.out_proj.{kind}"] = state.pop(f"{attn}out_proj.{kind}")


def read_esm2(path):
    """ESM-2 from a fair-esm checkpoint (.pt) on the CPU, memory-mapped, in the checkpoint's
    dtype (q, k and v fused). Returns (model, info): info holds the model's name and whether
    its weights are random."""
    path = Path(path)
    cfg, state, extra = read_fair_esm(path)
    _fuse_qkv(state, cfg)
    info = {
        "name": path.stem,
        "random_weights": bool(extra.get("random_weights", False)),
        "path": path,
    }
    return materialize(lambda: ESM2(cfg), state, path), info


def load_esm2(path, device="cpu", dtype=torch.float32):
    """read_esm2's ESM-2 on `device` in `dtype` (on_device), uncompiled (Encoder.to compiles):
    about a second for ESM-2 3B from the page cache
    (benchmarks/results/2026-11-22-h200-job-start.txt)."""
    model, info = read_esm2(path)
    return on_device(model, device, dtype, path), info


# ---- DNABERT-S ------------------------------------------------------------------------------

# Hugging Face (DNABERT-2 bert_layers.py) names -> ours; the rest of a name is kept.
_DNABERT_S_RENAMES = [
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
_DNABERT_S_NOT_USED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$)")


def _our_name(name):
    for pattern, replacement in _DNABERT_S_RENAMES:
        renamed, hits = pattern.subn(replacement, name)
        if hits:
            return renamed
    return None


def dnabert_s_weights_file(directory):
    """The weights file of a model directory (architectures.dnabert_s_weights)."""
    path = dnabert_s_weights(directory)
    if path is None:
        raise FileNotFoundError(
            f"{directory} holds no weights: expected one of {', '.join(DNABERT_S_WEIGHTS)}"
        )
    return path


def read_dnabert_s_weights(path, cfg):
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
        if _DNABERT_S_NOT_USED.match(short):
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


def read_dnabert_s(directory):
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
    path = dnabert_s_weights_file(directory)
    try:
        state = read_dnabert_s_weights(path, cfg)
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


def load_dnabert_s(directory, device="cpu", dtype=torch.float32):
    """read_dnabert_s's DNABERT-S on `device` in `dtype` (on_device), uncompiled. Returns (model,
    info)."""
    model, info = read_dnabert_s(directory)
    return on_device(model, device, dtype, info["path"]), info


# ---- the classifier -------------------------------------------------------------------------

# A classifier takes DNABERT-S's features beside ESM-2's: at most this many, with the widest ESM-2
MAX_INPUT_DIM = DNABertConfig().hidden_size + max(c.embed_dim for c in ESM2_PRESETS.values())
# The original train.py defines MLPClassifier in the script it runs and pickles it from there
ORIGINAL_CLASS = "__main__.MLPClassifier"


def load_classifier(path):
    """The classifier in eval mode, from an original pickled .pth or our safetensors file."""
    path = Path(path)
    try:
        state = (
            _read_classifier_safetensors(path)
            if is_safetensors(path)
            else _read_classifier_pickle(path)
        )
        _check_classifier_values(state)
    except pickled.Refused as error:
        raise ValueError(
            f"refusing to load {path}: {error}. A VirNucPro classifier is an MLPClassifier, "
            f"Linear(features, {HIDDEN_DIM}) -> BatchNorm1d -> ReLU -> Dropout -> "
            f"Linear({HIDDEN_DIM}, {N_CLASSES}) with at most {MAX_INPUT_DIM} features; nothing "
            "in the file was run. Use the published 300_model.pth/500_model.pth, or a "
            "classifier saved by virnucpro as .safetensors."
        ) from None
    return MLPClassifier.from_state_dict(state)


def _read_classifier_pickle(path):
    """The state dict of an original pickled MLPClassifier, its layout checked first."""
    classes = _classifier_classes(_meta_classifier(1))
    modules, refs = pickled.module_contents(pickled.read_pickle(path, set(classes.values())))
    found = {module_path: module.class_name for module_path, module in modules.items()}
    for module_path in sorted(classes.keys() | found.keys()):
        if found.get(module_path) != classes.get(module_path):
            raise pickled.Refused(
                f"its module {module_path or '(top)'} is {found.get(module_path, 'absent')} "
                f"where an MLPClassifier has {classes.get(module_path, 'none')}"
            )
    model = _check_classifier_tensors(
        {name: (ref.shape, ref.storage.dtype) for name, ref in refs.items()}
    )
    eps = modules["bn1"].state.get("eps")
    if eps != model.bn1.eps:  # the one setting of a layer that changes what it computes
        raise pickled.Refused(
            f"its bn1.eps is {eps!r:.40} where an MLPClassifier has {model.bn1.eps}"
        )
    return pickled.read_tensors(path, refs)


def _read_classifier_safetensors(path):
    """The state dict of a classifier save_classifier wrote, its layout checked first."""
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            if (handle.metadata() or {}).get(FORMAT_KEY) != SAFETENSORS_FORMAT:
                raise pickled.Refused("it is not a classifier written by virnucpro")
            names = handle.keys()
            slices = {name: handle.get_slice(name) for name in names}
            _check_classifier_tensors(
                {
                    name: (tuple(part.get_shape()), SAFETENSORS_DTYPES.get(part.get_dtype()))
                    for name, part in slices.items()
                }
            )
            return {name: handle.get_tensor(name) for name in names}
    except safetensors.SafetensorError as error:
        raise pickled.Refused(f"it is not a readable safetensors file ({error})") from None


def _check_classifier_tensors(found):
    """The meta-device MLPClassifier whose tensors `found` ({name: (shape, dtype)}) are; refused
    where they are not those of one, with at most MAX_INPUT_DIM features."""
    shape, _ = found.get("hidden_layer.weight", ((), None))
    if len(shape) != 2 or not 1 <= shape[1] <= MAX_INPUT_DIM:
        raise pickled.Refused(f"its hidden_layer.weight has shape {list(shape)}")
    model = _meta_classifier(shape[1])
    expected = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    for name in sorted(expected.keys() | found.keys()):
        if found.get(name) != expected.get(name):
            raise pickled.Refused(
                f"its {name} is {_describe(found.get(name))} where an MLPClassifier of "
                f"{shape[1]} features has {_describe(expected.get(name))}"
            )
    return model


def _check_classifier_values(state):
    """Refused where a tensor of the state dict holds a NaN or infinite value, or BatchNorm a
    negative variance: either makes every frame's scores NaN."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise pickled.Refused(f"its {name} holds NaN or infinite values")
    if (state["bn1.running_var"] < 0).any():
        raise pickled.Refused("its bn1.running_var holds negative values, which no variance has")


def _meta_classifier(input_dim):
    """MLPClassifier(input_dim) on the meta device: its layout, with nothing allocated."""
    with torch.device("meta"):
        return MLPClassifier(input_dim)


def _classifier_classes(model):
    """{module path: class} of a model, as a pickle of the original's names them."""
    names = {p: f"{type(m).__module__}.{type(m).__qualname__}" for p, m in model.named_modules()}
    return names | {"": ORIGINAL_CLASS}


def _describe(spec):
    return "absent" if spec is None else f"{spec[1]} {list(spec[0])}"
