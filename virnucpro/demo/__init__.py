"""The demo's models: small random-weight checkpoints in the published formats (full
architectures, shrunk widths and depths), built from a fixed seed rather than committed."""

import random
from pathlib import Path

from ..models.architectures import DNABertConfig
from .random_checkpoints import (
    train_dna_tokenizer,
    write_dnabert_s,
    write_esm2,
    write_pickled_classifier,
)

ESM2_SHAPE = {"num_layers": 4, "embed_dim": 64, "attention_heads": 4}
DNABERT_S_SHAPE = DNABertConfig(
    vocab_size=256,
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=6,
    intermediate_size=96,
)


def build_demo_models(esm2_path, dnabert_s_dir, classifier_paths, seed=0):
    """Write an ESM-2 checkpoint, a DNABERT-S directory (its BPE tokenizer trained on random
    DNA from the seed) and one pickled classifier per path in `classifier_paths`."""
    write_esm2(esm2_path, seed=seed, **ESM2_SHAPE)
    rng = random.Random(seed)
    training = ["".join(rng.choices("ACGT", k=500)) for _ in range(200)]
    tokenizer = train_dna_tokenizer(training, DNABERT_S_SHAPE.vocab_size)
    write_dnabert_s(dnabert_s_dir, DNABERT_S_SHAPE, tokenizer, seed=seed + 1)
    features = ESM2_SHAPE["embed_dim"] + DNABERT_S_SHAPE.hidden_size
    for offset, path in enumerate(classifier_paths, start=2):
        write_pickled_classifier(Path(path), features, seed=seed + offset)
