"""The VirNucPro MLP classifier (SPEC §5) and the writer of its safetensors file of our own.
models.checkpoints reads that file and the original's pickled `.pth` files."""

import json

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..io.atomic import atomic_open
from ..io.classifier_header import EMBEDDING_MODELS, FORMAT_KEY, MODELS_KEY, SAFETENSORS_FORMAT

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
