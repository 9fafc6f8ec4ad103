"""The VirNucPro MLP classifier (SPEC §5) and its two file formats: the original's pickled
`.pth` files, read as data without running anything in them (models.pickled), and a safetensors
file of our own. A file is checked to hold a VirNucPro MLPClassifier before its tensors are
read, so no file can make the loader allocate more than the widest such classifier takes; and
its values are checked before it is built, as one NaN weight or negative variance would score
every frame NaN."""

import json
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_open
from . import pickled
from .architectures import ESM2_PRESETS, DNABertConfig
from .classifier_header import (
    EMBEDDING_MODELS,
    FORMAT_KEY,
    MODELS_KEY,
    SAFETENSORS_FORMAT,
    is_safetensors,
)
from .loading import SAFETENSORS_DTYPES

HIDDEN_DIM, N_CLASSES = 512, 2


class MLPClassifier(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Dropout(0.5) -> Linear, with the original's attribute
    names so its weights map one to one. Column 0 scores `others`, column 1 `virus`."""

    def __init__(self, input_dim, hidden_dim=HIDDEN_DIM, num_class=N_CLASSES):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.hidden_layer(x)))
        return self.output_layer(self.dropout(x))

    @property
    def input_dim(self):
        return self.hidden_layer.in_features

    @classmethod
    def from_state_dict(cls, state):
        hidden_dim, input_dim = state["hidden_layer.weight"].shape
        model = cls(input_dim, hidden_dim, state["output_layer.weight"].shape[0])
        model.load_state_dict(state)
        return model.eval()


# A classifier takes DNABERT-S's features beside ESM-2's: at most this many, with the widest ESM-2
MAX_INPUT_DIM = DNABertConfig().hidden_size + max(c.embed_dim for c in ESM2_PRESETS.values())
# The original train.py defines MLPClassifier in the script it runs and pickles it from there
ORIGINAL_CLASS = "__main__.MLPClassifier"


def load_classifier(path):
    """The classifier in eval mode, from an original pickled .pth or our safetensors file."""
    path = Path(path)
    try:
        state = _read_safetensors(path) if is_safetensors(path) else _read_pickle(path)
        _check_values(state)
    except pickled.Refused as error:
        raise ValueError(
            f"refusing to load {path}: {error}. A VirNucPro classifier is an MLPClassifier, "
            f"Linear(features, {HIDDEN_DIM}) -> BatchNorm1d -> ReLU -> Dropout -> "
            f"Linear({HIDDEN_DIM}, {N_CLASSES}) with at most {MAX_INPUT_DIM} features; nothing "
            "in the file was run. Use the published 300_model.pth/500_model.pth, or a "
            "classifier saved by virnucpro as .safetensors."
        ) from None
    return MLPClassifier.from_state_dict(state)


def _read_pickle(path):
    """The state dict of an original pickled MLPClassifier, its layout checked first."""
    classes = _classes(_meta_model(1))
    modules, refs = pickled.module_contents(pickled.read_pickle(path, set(classes.values())))
    found = {module_path: module.class_name for module_path, module in modules.items()}
    for module_path in sorted(classes.keys() | found.keys()):
        if found.get(module_path) != classes.get(module_path):
            raise pickled.Refused(
                f"its module {module_path or '(top)'} is {found.get(module_path, 'absent')} "
                f"where an MLPClassifier has {classes.get(module_path, 'none')}"
            )
    model = _check_tensors({name: (ref.shape, ref.storage.dtype) for name, ref in refs.items()})
    eps = modules["bn1"].state.get("eps")
    if eps != model.bn1.eps:  # the one setting of a layer that changes what it computes
        raise pickled.Refused(
            f"its bn1.eps is {eps!r:.40} where an MLPClassifier has {model.bn1.eps}"
        )
    return pickled.read_tensors(path, refs)


def _read_safetensors(path):
    """The state dict of a classifier save_classifier wrote, its layout checked first."""
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            if (handle.metadata() or {}).get(FORMAT_KEY) != SAFETENSORS_FORMAT:
                raise pickled.Refused("it is not a classifier written by virnucpro")
            names = handle.keys()
            slices = {name: handle.get_slice(name) for name in names}
            _check_tensors(
                {
                    name: (tuple(part.get_shape()), SAFETENSORS_DTYPES.get(part.get_dtype()))
                    for name, part in slices.items()
                }
            )
            return {name: handle.get_tensor(name) for name in names}
    except safetensors.SafetensorError as error:
        raise pickled.Refused(f"it is not a readable safetensors file ({error})") from None


def _check_tensors(found):
    """The meta-device MLPClassifier whose tensors `found` ({name: (shape, dtype)}) are; refused
    where they are not those of one, with at most MAX_INPUT_DIM features."""
    shape, _ = found.get("hidden_layer.weight", ((), None))
    if len(shape) != 2 or not 1 <= shape[1] <= MAX_INPUT_DIM:
        raise pickled.Refused(f"its hidden_layer.weight has shape {list(shape)}")
    model = _meta_model(shape[1])
    expected = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    for name in sorted(expected.keys() | found.keys()):
        if found.get(name) != expected.get(name):
            raise pickled.Refused(
                f"its {name} is {_describe(found.get(name))} where an MLPClassifier of "
                f"{shape[1]} features has {_describe(expected.get(name))}"
            )
    return model


def _check_values(state):
    """Refused where a tensor of the state dict holds a NaN or infinite value, or BatchNorm a
    negative variance: either makes every frame's scores NaN."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise pickled.Refused(f"its {name} holds NaN or infinite values")
    if (state["bn1.running_var"] < 0).any():
        raise pickled.Refused("its bn1.running_var holds negative values, which no variance has")


def _meta_model(input_dim):
    """MLPClassifier(input_dim) on the meta device: its layout, with nothing allocated."""
    with torch.device("meta"):
        return MLPClassifier(input_dim)


def _classes(model):
    """{module path: class} of a model, as a pickle of the original's names them."""
    names = {p: f"{type(m).__module__}.{type(m).__qualname__}" for p, m in model.named_modules()}
    return names | {"": ORIGINAL_CLASS}


def _describe(spec):
    return "absent" if spec is None else f"{spec[1]} {list(spec[0])}"


def save_classifier(model, path, models=EMBEDDING_MODELS, metadata=None):
    """Write our plain format: the state dict as safetensors, tagged with its format, the
    embedding models whose features it takes (some of EMBEDDING_MODELS, in that order) and the
    strings of `metadata` ({key: str}, structured values JSON-encoded by the caller). The same
    model and metadata give the same bytes."""
    if list(models) != [m for m in EMBEDDING_MODELS if m in models] or not models:
        raise ValueError(f"a classifier takes some of {EMBEDDING_MODELS} in that order: {models}")
    metadata = dict(metadata or {})
    reserved = {FORMAT_KEY, MODELS_KEY} & metadata.keys()
    if reserved:
        raise ValueError(f"save_classifier writes {sorted(reserved)} itself: leave them out")
    if not all(isinstance(value, str) for value in metadata.values()):
        raise ValueError("a classifier's metadata are strings: JSON-encode structured values")
    header = {FORMAT_KEY: SAFETENSORS_FORMAT, MODELS_KEY: ",".join(models)} | metadata
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with atomic_open(path, "wb") as handle:
        handle.write(_sorted_header(safetensors.torch.save(state, metadata=header)))


def _sorted_header(serialised):
    """safetensors bytes with the keys of their JSON header sorted. safetensors keeps the
    metadata in a hash map whose order changes from one call to the next, so without this a
    classifier trained twice alike would differ in its bytes, and its digest with them."""
    length = int.from_bytes(serialised[:8], "little")
    header = json.loads(serialised[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # padded as safetensors pads it: the tensors start aligned
    return len(text).to_bytes(8, "little") + text + serialised[8 + length :]


@torch.no_grad()
def scores(model, features):
    """Softmax probabilities [N, 2] (float32) of a [N, input_dim] feature block."""
    return torch.softmax(model(features.float()), dim=1)
