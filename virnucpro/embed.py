"""The embedding stage: one shard of frames in, one HDF5 file of per-frame vectors out."""

import logging
import time

import numpy as np
import torch

from . import __version__
from .device import dtype_name, resolve_device, resolve_dtype
from .h5store import write_embeddings
from .models import dnabert_s, esm2
from .packing import PackedBatch, token_budget_batches
from .sharding import read_shard

log = logging.getLogger(__name__)

CPU_BATCH_TOKENS = 4096


class ProteinEncoder:
    """ESM-2: residue-mean of the last layer over <cls> + protein + <eos> (SPEC §4)."""

    kind, column = "esm2", "protein"

    def __init__(self, path, device, dtype):
        self.model, self.info = esm2.load_model(path, device, dtype)
        self.dim = self.model.cfg.embed_dim

    def tokenize(self, texts):
        return [esm2.tokenize(text) for text in texts]

    def __call__(self, batch):
        return esm2.residue_mean(self.model(batch), batch)


class NucleotideEncoder:
    """DNABERT-S: mean of the last layer over all tokens of the frame's nucleotides (SPEC §3)."""

    kind, column = "dnabert_s", "nucleotide"

    def __init__(self, path, device, dtype):
        self.model, self.info = dnabert_s.load_model(path, device, dtype)
        self.tokenizer = dnabert_s.load_tokenizer(path)
        self.dim = self.model.cfg.hidden_size

    def tokenize(self, texts):
        return dnabert_s.tokenize_all(self.tokenizer, texts)

    def __call__(self, batch):
        return dnabert_s.all_token_mean(self.model(batch), batch)


ENCODERS = {encoder.kind: encoder for encoder in (ProteinEncoder, NucleotideEncoder)}


def embed_shard(
    shard_tsv, out_h5, kind, model_path, device="auto", precision="auto", batch_tokens=None
):
    """Embed every frame of a shard with one model and write the vectors in shard order."""
    device = resolve_device(device)
    dtype = resolve_dtype(precision, device)
    started = time.perf_counter()
    encoder = ENCODERS[kind](model_path, device, dtype)
    log.info(
        "%s loaded from %s on %s in %.1f s", kind, model_path, device, time.perf_counter() - started
    )
    ordinals, frame_ids, nucleotides, proteins = read_shard(shard_tsv)
    tokens = encoder.tokenize(proteins if encoder.column == "protein" else nucleotides)
    vectors = embed_tokens(encoder, tokens, device, batch_tokens or CPU_BATCH_TOKENS)
    attrs = {
        "model": encoder.info["name"],
        "model_path": str(model_path),
        "random_weights": encoder.info["random_weights"],
        "precision": dtype_name(dtype),
        "device": device.type,
        "dim": encoder.dim,
        "virnucpro_version": __version__,
    }
    write_embeddings(out_h5, ordinals, frame_ids, vectors, attrs)
    n_tokens = sum(len(t) for t in tokens)
    elapsed = time.perf_counter() - started
    log.info("%d frames, %d tokens embedded in %.1f s", len(frame_ids), n_tokens, elapsed)
    if encoder.info["random_weights"]:
        log.warning(
            "the %s weights are RANDOM (demo/test checkpoint): embeddings mean nothing", kind
        )


@torch.inference_mode()
def embed_tokens(encoder, tokens, device, batch_tokens):
    """Vectors [N, dim] float32 for N token arrays, computed in packed batches by length."""
    vectors = np.empty((len(tokens), encoder.dim), dtype=np.float32)
    for index in token_budget_batches([len(t) for t in tokens], batch_tokens):
        batch = PackedBatch.from_token_lists([tokens[i] for i in index]).to(device)
        result = encoder(batch)
        if not torch.isfinite(result).all():
            raise FloatingPointError(
                f"{encoder.kind} gave non-finite values for a batch of {len(index)} frames"
            )
        vectors[index] = result.cpu().numpy()
    return vectors
