"""The embedding stage: one shard of frames in, one HDF5 file of per-frame vectors out."""

import copy
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from . import __version__
from .device import dtype_name, resolve_device, resolve_dtype
from .engine import Engine, auto_batch_tokens
from .h5store import embedding_writer
from .models import dnabert_s, esm2
from .packing import PackedBatch
from .sharding import read_shard

log = logging.getLogger(__name__)


class Encoder:
    """A model and its pooling: `encoder(batch)` gives one float32 vector per sequence."""

    def __init__(self, model, info):
        self.model, self.info = model, info

    def widened(self):
        """The same encoder in float32, for batches that overflow in half precision."""
        return type(self)(copy.deepcopy(self.model).float(), self.info)


class ProteinEncoder(Encoder):
    """ESM-2: residue-mean of the last layer over <cls> + protein + <eos> (SPEC §4)."""

    kind, column = "esm2", "protein"

    @classmethod
    def load(cls, path, device, dtype):
        return cls(*esm2.load_model(path, device, dtype))

    @staticmethod
    def tokenize(path, texts):
        return [esm2.tokenize(text) for text in texts]

    @property
    def dim(self):
        return self.model.cfg.embed_dim

    @property
    def bytes_per_token(self):
        """Activation memory of one token in one layer, with room for the compiled kernels."""
        return 4 * (8 * self.dim + 3 * 4 * self.dim)

    max_batch_tokens = 98304  # ESM-2 3B tokens/s peaks here on an H200 (profile_models.py)

    def __call__(self, batch):
        return esm2.residue_mean(self.model(batch), batch)


class NucleotideEncoder(Encoder):
    """DNABERT-S: mean of the last layer over all tokens of the frame's nucleotides (SPEC §3)."""

    kind, column = "dnabert_s", "nucleotide"

    @classmethod
    def load(cls, path, device, dtype):
        return cls(*dnabert_s.load_model(path, device, dtype))

    @staticmethod
    def tokenize(path, texts):
        return dnabert_s.tokenize_all(dnabert_s.load_tokenizer(path), texts)

    @property
    def dim(self):
        return self.model.cfg.hidden_size

    @property
    def bytes_per_token(self):
        """As for ESM-2, plus the padded attention's [B, H, L, L] mask (L about 128)."""
        cfg = self.model.cfg
        return 4 * (8 * self.dim + 3 * cfg.intermediate_size) + 2 * cfg.num_attention_heads * 128

    max_batch_tokens = 131072  # DNABERT-S tokens/s peaks here on an H200 (profile_models.py)

    def __call__(self, batch):
        return dnabert_s.all_token_mean(self.model(batch), batch)


ENCODERS = {encoder.kind: encoder for encoder in (ProteinEncoder, NucleotideEncoder)}

# Fault injection for the resume tests: an embedding job whose shard path contains this
# variable's value fails after computing, so its half-written file must be discarded.
FAIL_SHARD = "VIRNUCPRO_FAIL_SHARD"


def embed_shard(
    shard_tsv, out_h5, kind, model_path, device="auto", precision="auto", batch_tokens=None
):
    """Embed every frame of a shard with one model and write the vectors with their frames."""
    device = resolve_device(device)
    dtype = resolve_dtype(precision, device)
    encoder_type = ENCODERS[kind]
    ordinals, frame_ids, nucleotides, proteins = read_shard(shard_tsv)
    texts = proteins if encoder_type.column == "protein" else nucleotides
    with ThreadPoolExecutor(1) as pool:  # tokenize while the model loads
        tokenized = pool.submit(encoder_type.tokenize, model_path, texts)
        started = time.perf_counter()
        encoder = encoder_type.load(model_path, device, dtype)
        tokens = tokenized.result()
    # Longest first, so each batch holds sequences of about one length; the file keeps this
    # order with the ordinals, and the classifier matches the two files by ordinal.
    order = sorted(range(len(tokens)), key=lambda i: (-len(tokens[i]), ordinals[i]))
    tokens = [tokens[i] for i in order]
    if tokens:  # a first small batch compiles the GPU kernels before the timed loop
        with torch.inference_mode():
            encoder(PackedBatch.from_token_lists(tokens[:8]).to(device))
    load_seconds = time.perf_counter() - started
    log.info(
        "%s loaded and compiled on %s (%s, CUDA_VISIBLE_DEVICES=%s) in %.1f s",
        kind,
        device,
        dtype_name(dtype),
        os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        load_seconds,
    )
    budget = batch_tokens or auto_batch_tokens(
        encoder.bytes_per_token, device, encoder.max_batch_tokens
    )
    rows = embedding_writer(out_h5, ordinals[order], [frame_ids[i] for i in order], encoder.dim)
    with rows as (write, attrs):
        with torch.inference_mode():
            stats = Engine(encoder, device).run(tokens, budget, write)
        if os.environ.get(FAIL_SHARD) and os.environ[FAIL_SHARD] in str(shard_tsv):
            raise RuntimeError(f"{shard_tsv} fails on purpose: {FAIL_SHARD} is set")
        attrs.update(
            model=encoder.info["name"],
            model_path=str(model_path),
            random_weights=encoder.info["random_weights"],
            precision=dtype_name(dtype),
            device=device.type,
            dim=encoder.dim,
            load_seconds=load_seconds,
            embed_seconds=stats.wall_seconds,
            gpu_busy=-1.0 if stats.gpu_busy is None else stats.gpu_busy,
            recomputed_in_fp32=stats.recomputed_in_fp32,
            virnucpro_version=__version__,
        )
    log.info("%s", stats.summary())
    if encoder.info["random_weights"]:
        log.warning(
            "the %s weights are RANDOM (demo/test checkpoint): embeddings mean nothing", kind
        )
    return stats
