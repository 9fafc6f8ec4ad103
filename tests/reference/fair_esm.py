"""ESM-2 embeddings computed the way the original computed them (its units.py extract_esm):
fair-esm's own loader and ESM2 in fp32, batches of 2048 tokens, a batch converter that does not
truncate (the model attends over the whole protein), the mean of the last layer over residues
1..min(len, 1024)."""

import argparse

import esm
import torch


def load(path, device="cpu"):
    with torch.serialization.safe_globals([argparse.Namespace]):
        model, alphabet = esm.pretrained.load_model_and_alphabet_local(str(path))
    return model.eval().to(device), alphabet


@torch.no_grad()
def embed(model, alphabet, sequences, toks_per_batch=2048, autocast=None):
    """[N, D] float32 residue means, in the order of `sequences`."""
    device = next(model.parameters()).device
    dataset = esm.data.FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    converter = alphabet.get_batch_converter()
    means = {}
    for indices in dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1):
        labels, strs, tokens = converter([dataset[i] for i in indices])
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            out = model(tokens.to(device), repr_layers=[model.num_layers])
        hidden = out["representations"][model.num_layers].float()
        for row, (label, text) in enumerate(zip(labels, strs, strict=True)):
            means[int(label)] = hidden[row, 1 : min(1024, len(text)) + 1].mean(0)
    return torch.stack([means[i] for i in range(len(sequences))])
