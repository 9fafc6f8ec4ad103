"""The VirNucPro MLP classifier (SPEC §5) and its two file formats: the original's pickled
`.pth` files, read without letting them run code, and a safetensors file of our own."""

import re
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_path

HIDDEN_DIM, N_CLASSES = 512, 2
SAFETENSORS_FORMAT = "virnucpro-mlp"


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


# Everything a pickled MLPClassifier from the original's train.py refers to: its own class
# (saved from the script, so named __main__.MLPClassifier) and the torch layers inside it.
# Tensors, storages and containers are allowed by weights_only loading itself.
_PICKLE_ALLOWED = [
    (MLPClassifier, "__main__.MLPClassifier"),
    nn.Linear,
    nn.BatchNorm1d,
    nn.Dropout,
]
_UNSUPPORTED = re.compile(r"GLOBAL ([\w.]+)")


def load_classifier(path):
    """The classifier in eval mode, from an original pickled .pth or our safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with safetensors.safe_open(path, framework="pt") as handle:
            if (handle.metadata() or {}).get("format") != SAFETENSORS_FORMAT:
                raise ValueError(f"{path} is not a classifier written by virnucpro")
        return MLPClassifier.from_state_dict(safetensors.torch.load_file(path))
    return MLPClassifier.from_state_dict(_unpickle_original(path))


def _unpickle_original(path):
    with torch.serialization.safe_globals(_PICKLE_ALLOWED):
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - reworded with the file and the fix
            found = _UNSUPPORTED.search(str(error))
            what = f"it refers to {found.group(1)}" if found else str(error).splitlines()[0]
            raise ValueError(
                f"refusing to load {path}: {what}, which is not part of a VirNucPro "
                "MLPClassifier, and unpickling it could run code. Use the published "
                "300_model.pth/500_model.pth, or a classifier saved by virnucpro as .safetensors."
            ) from error
    if isinstance(loaded, MLPClassifier):
        return loaded.state_dict()
    raise ValueError(f"{path} holds a {type(loaded).__name__}, not a pickled MLPClassifier")


def save_classifier(model, path):
    """Write our plain format: the state dict as safetensors, tagged with its format."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, tmp, metadata={"format": SAFETENSORS_FORMAT})


@torch.no_grad()
def scores(model, features):
    """Softmax probabilities [N, 2] (float32) of a [N, input_dim] feature block."""
    return torch.softmax(model(features.float()), dim=1)
