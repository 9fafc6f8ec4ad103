"""The header of a classifier file of ours: what it says of the classifier (its format, the
embedding models it takes, and what a training run adds), read without its tensors and without
torch, so that the plan and the aggregation, which need only these, start quickly."""

from pathlib import Path

import safetensors

SAFETENSORS_FORMAT = "virnucpro-mlp"
# The keys of a safetensors classifier's header. save_classifier writes the first two; a trained
# classifier (train_run) adds the others: its features' widths ("768,2560") and chunk size, the
# embedding model of each kind (JSON {kind: name}), the SHA-256 of its training data, its metrics
# on the held-out frames (JSON of evaluation.evaluate_scores), its seed, whether it was fitted in
# the original's legacy way ("true"/"false"), whether its embedding models had random weights
# ("true"/"false": a demo's) and, where fitted, its calibration (JSON).
FORMAT_KEY, MODELS_KEY = "format", "models"
WIDTHS_KEY, CHUNK_SIZE_KEY, EMBEDDING_MODELS_KEY = "widths", "chunk_size", "embedding_models"
TRAINING_DATA_KEY, METRICS_KEY = "training_data_sha256", "metrics"
SEED_KEY, LEGACY_KEY, CALIBRATION_KEY = "seed", "legacy", "calibration"
RANDOM_ENCODERS_KEY = "random_encoders"
# The embedding models a classifier's features come from, side by side in this order; the
# original's classifiers take both.
EMBEDDING_MODELS = ("dnabert_s", "esm2")


def is_safetensors(path):
    """Whether a classifier file is in the safetensors format (ours) rather than a pickle (the
    original's): by its suffix, or for a name without one (the link to a sample's classifier
    that its embedding jobs read, workflow/rules/embed.smk) by its first bytes, a safetensors
    file's 8-byte header length and then the header's JSON."""
    path = Path(path)
    if path.suffix:
        return path.suffix == ".safetensors"
    with open(path, "rb") as handle:
        return handle.read(9)[8:9] == b"{"


def classifier_metadata(path):
    """The header of the classifier file `path` ({key: str}, the *_KEY constants), read without
    its tensors; empty for the original's `.pth`, which has none."""
    if not is_safetensors(path):
        return {}
    try:
        with safetensors.safe_open(path, framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except safetensors.SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None
    if metadata.get(FORMAT_KEY) != SAFETENSORS_FORMAT:
        raise ValueError(f"{path} is not a classifier written by virnucpro")
    return metadata


def classifier_models(path):
    """The embedding models whose features the classifier file `path` takes, from its header
    alone: ours say; the original's `.pth` take both, as does a file not there yet (the
    published ones, which the workflow downloads)."""
    if not Path(path).exists() or not is_safetensors(path):
        return EMBEDDING_MODELS
    try:
        with safetensors.safe_open(path, framework="numpy") as handle:
            named = (handle.metadata() or {}).get(MODELS_KEY)
    except safetensors.SafetensorError:
        return EMBEDDING_MODELS  # load_classifier names the problem where the file is read
    return tuple(named.split(",")) if named else EMBEDDING_MODELS
