"""The embedding stage: one shard of frames in, one HDF5 file of per-frame vectors per model out.

One job embeds a shard with the models its classifier takes (DNABERT-S, ESM-2 or both), so
each is loaded once per shard and the GPU is never idle between them: DNABERT-S (small, loaded
in a moment) computes first while ESM-2's weights load beside it, then ESM-2. The files list
the frames in one order, the last model's (longest first, the order it computes and streams
them in), so that the classifier reads them side by side in blocks. With a classifier given,
the job also scores the frames on the CPU while the GPU computes the last model
(scoring.StreamingScorer) and stores the scores in that model's file, so that classifying the
shard needs no pass over its vectors.
"""

import copy
import importlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .device import FP8, check_fp8, dtype_name, resolve_device, resolve_dtype
from .engine import Engine, auto_batch_tokens, embed_all
from .fidelity import GateSettings, check, measure
from .h5store import embedding_writer
from .models import dnabert_s, esm2
from .models.classifier import load_classifier
from .models.fp8 import esm2_to_fp8
from .predict import SCORED_WITH, classifier_digest
from .scoring import StreamingScorer, check_width
from .sharding import read_shard

log = logging.getLogger(__name__)


class Encoder:
    """A model and its pooling: `encoder(batch)` gives one float32 vector per sequence."""

    def __init__(self, model, info):
        self.model, self.info = model, info

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def float32_copy(self):
        """The same encoder in float32, for batches that overflow in half precision."""
        return type(self)(copy.deepcopy(self.model).float(), self.info)


class ProteinEncoder(Encoder):
    """ESM-2: residue-mean of the last layer over <cls> + protein + <eos> (SPEC §4)."""

    kind, name, column, alibi = "esm2", "ESM-2", "protein", False

    @classmethod
    def load(cls, path, device, dtype):
        return cls(*esm2.load_model(path, device, dtype))

    @staticmethod
    def tokenize(path, texts):
        return esm2.tokenize_all(texts)

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

    kind, name, column, alibi = "dnabert_s", "DNABERT-S", "nucleotide", True

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


# Fault injection for the resume tests: an embedding job whose ESM-2 output path contains this
# variable's value fails after computing, so its half-written files must be discarded.
FAIL_SHARD = "VIRNUCPRO_FAIL_SHARD"


def longest_first(tokens, ordinals):
    """Indices of `tokens` longest first, ties in input order: batches then hold sequences of
    about one length, which pack densely."""
    return sorted(range(len(tokens)), key=lambda i: (-len(tokens[i]), ordinals[i]))


ENCODERS = {"dnabert_s": NucleotideEncoder, "esm2": ProteinEncoder}  # in features order


def embed_shard(
    frames_tsv,
    manifest_tsv,
    shard,
    outputs,
    model_paths,
    device="auto",
    precision="auto",
    batch_tokens=None,
    classifier_path=None,
    fp8_gate=None,
):
    """Embed every frame of one shard of a sample's frame table (sharding.shard_frames) with the
    models of `outputs` ({kind: HDF5 path}, kinds of ENCODERS, one or both) loaded from
    `model_paths` ({kind: checkpoint}), one file per model, all in the last model's order; score
    the frames with `classifier_path` if given. With precision `fp8`, ESM-2's linear layers run
    in FP8 once `fp8_gate` (a fidelity.GateSettings) is passed on the shard's first frames
    (_fp8_gate). Returns {kind: the engine's RunStats}."""
    outputs = {kind: outputs[kind] for kind in ENCODERS if kind in outputs}  # features order
    kinds = list(outputs)
    device = resolve_device(device)
    dtype = resolve_dtype(precision, device)
    if precision == FP8:
        check_fp8(device)

    def in_fp8(kind):
        return precision == FP8 and kind == "esm2"  # DNABERT-S stays fp16 (models.fp8)

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool, ExitStack() as files:
        # The GPU starts up while the shard is read and tokenized; the first model is loaded
        # alone, so that its loop starts at once, and the next (ESM-2) loads while it runs.
        device_ready = pool.submit(_start, device, started)
        ordinals, frame_ids, nucleotides, proteins = read_shard(frames_tsv, manifest_tsv, shard)
        _mark("shard read", started)
        texts = {"dnabert_s": nucleotides, "esm2": proteins}
        tokens = {k: pool.submit(ENCODERS[k].tokenize, model_paths[k], texts[k]) for k in kinds}
        device_ready.result()
        _mark("device ready", started)
        first, *later = kinds
        loaded = {first: _timed_load(ENCODERS[first], model_paths[first], device, dtype)}
        _mark(f"{ENCODERS[first].name} loaded in {loaded[first][1]:.1f} s", started)
        loaded.update(
            (k, pool.submit(_timed_load, ENCODERS[k], model_paths[k], device, dtype)) for k in later
        )
        classifier = pool.submit(_classifier, classifier_path)
        # the files list the frames in the order the last model computes and streams them in
        in_file_order = longest_first(tokens[kinds[-1]].result(), ordinals)
        file_ordinals = ordinals[in_file_order]
        file_ids = [frame_ids[i] for i in in_file_order]
        row_of = np.empty(len(ordinals), dtype=np.int64)  # frame index -> row in the files
        row_of[in_file_order] = np.arange(len(ordinals))
        log.info(
            "%d frames of %s in %s; %s on %s (%s, CUDA_VISIBLE_DEVICES=%s)",
            len(ordinals),
            shard,
            frames_tsv,
            " and ".join(ENCODERS[k].name for k in kinds),
            device,
            dtype_name(dtype),
            os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        )

        stats, earlier = {}, []  # earlier: the vectors of the models before the last, by row
        for kind in kinds:
            if kind != first:
                loaded[kind] = loaded[kind].result()
                _mark(f"{ENCODERS[kind].name} loaded in {loaded[kind][1]:.1f} s", started)
            encoder, load_seconds = loaded[kind]
            # both or neither: every file is finished only when the last model's is
            out = files.enter_context(
                embedding_writer(outputs[kind], file_ordinals, file_ids, encoder.dim)
            )
            shard_tokens = tokens[kind].result()
            begun = _mark(f"{encoder.name} tokens ready", started)
            if kind != kinds[-1]:
                # the later models' weights are still arriving: leave room for them
                reserved = sum(_file_bytes(model_paths[k]) for k in later)
                budget = batch_tokens or auto_batch_tokens(
                    encoder.bytes_per_token, device, encoder.max_batch_tokens, reserved
                )
                vectors, stats[kind] = _embed_in_rows(
                    encoder, shard_tokens, ordinals, row_of, device, budget
                )
                out.write(0, vectors)
                earlier.append(vectors)
            else:
                budget = batch_tokens or auto_batch_tokens(
                    encoder.bytes_per_token, device, encoder.max_batch_tokens
                )
                scorer = _scorer(
                    classifier.result(), classifier_path, earlier, encoder, outputs, len(ordinals)
                )
                if in_fp8(kind):
                    gate = _fp8_gate(
                        encoder,
                        (shard_tokens, ordinals, row_of, earlier),
                        None if scorer is None else classifier.result()[0],  # one that fits
                        fp8_gate or GateSettings(),
                        (device, budget),
                        outputs[kind],
                    )
                    out.attrs.update(gate.attributes())
                with torch.inference_mode():
                    stats[kind] = Engine(encoder, device).run(
                        [shard_tokens[i] for i in in_file_order], budget, _sink(out, scorer)
                    )
                log.info("%s: %s", encoder.name, stats[kind].summary())
                if os.environ.get(FAIL_SHARD) and os.environ[FAIL_SHARD] in str(outputs[kind]):
                    raise RuntimeError(f"{outputs[kind]} fails on purpose: {FAIL_SHARD} is set")
                if scorer is not None:
                    out.store("scores", scorer.result())
                    out.attrs[SCORED_WITH] = classifier.result()[1]
            out.attrs.update(
                _attributes(encoder, model_paths[kind], device, load_seconds, begun, stats[kind])
            )
            if in_fp8(kind):
                out.attrs["precision"] = FP8
    log.info("shard embedded in %.1f s", time.perf_counter() - started)
    for kind in kinds:
        if loaded[kind][0].info["random_weights"]:
            log.warning(
                "the %s weights are RANDOM (demo/test checkpoint): embeddings mean nothing", kind
            )
    return stats


def _fp8_gate(encoder, shard, classifier, settings, run, path):
    """Embed the shard's first `settings.frames` frames by ordinal in fp16, turn ESM-2's linear
    layers to FP8, embed them again, and stop the job (fidelity.FidelityError) unless the two
    agree as `settings` asks; returns the GateReport. `shard`: (tokens, ordinals, row of each
    frame in the files, the earlier models' vectors by row); `classifier`: the sample's
    classifier where it takes these models' features (embed._scorer's check), else None;
    `run`: (device, batch tokens). The calls compared are the classifier's on the earlier
    models' vectors beside ESM-2's."""
    tokens, ordinals, row_of, earlier = shard
    device, budget = run
    sample = np.argsort(ordinals, kind="stable")[: settings.frames]
    sample_tokens = [tokens[i] for i in sample]
    # fp16 uncompiled: compiling kernels that the job would use for these frames alone costs
    # more than computing them without; and with no compiled shape to keep, in batches of up to
    # twice the job's (so 2,000 frames of reads in one, not two mostly filled with filler)
    eager_budget = min(sum(map(len, sample_tokens)), 2 * budget)
    with torch.compiler.set_stance("force_eager"):
        fp16, _ = embed_all(encoder, sample_tokens, device, eager_budget)
    esm2_to_fp8(encoder.model)
    fp8, _ = embed_all(encoder, sample_tokens, device, budget)
    report = measure(fp16, fp8, classifier, [vectors[row_of[sample]] for vectors in earlier])
    log.info("%s: %s", path, report.describe())
    check(report, settings, path)
    return report


def _start(device, started):
    """Create the GPU's context and import the compiler (seconds each on some machines), so that
    the first model load and the first compiled batch need not."""
    if device.type == "cuda":
        torch.cuda.init()
        torch.empty(1, device=device)
        _mark("CUDA context created", started)
        importlib.import_module("torch._inductor.compile_fx")  # beside the shard being read
        _mark("compiler imported", started)


def _mark(event, started):
    """Log when a step of the job's start ended (the profile of its fixed cost); return that."""
    seconds = time.perf_counter() - started
    log.info("%s: %.2f s into the job", event, seconds)
    return seconds


def _timed_load(encoder_type, path, device, dtype):
    started = time.perf_counter()
    encoder = encoder_type.load(path, device, dtype)
    return encoder, time.perf_counter() - started


def _classifier(path):
    """(model, SHA-256) of the classifier to score with, or None: a classifier this job cannot
    read is the classification stage's to report, so the embeddings are kept regardless."""
    if path is None:
        return None
    try:
        return load_classifier(path), classifier_digest(path)
    except (OSError, ValueError) as error:
        log.warning("not scoring in this job (the classification stage will): %s", error)
        return None


def _scorer(classifier, path, earlier, last, outputs, frames):
    """A StreamingScorer for the shard's `frames`, or None where there is no classifier that
    fits: `earlier`, the vectors of the models before the last, which is `last`."""
    if classifier is None:
        return None
    widths = [vectors.shape[1] for vectors in earlier] + [last.dim]
    try:
        check_width(classifier[0], widths, path, list(outputs.values()))
    except ValueError as error:
        log.warning("not scoring in this job (the classification stage will): %s", error)
        return None
    return StreamingScorer(classifier[0], earlier, frames)


def _sink(out, scorer):
    """The engine's callback: each block of vectors to the file, and to the scorer if any."""
    if scorer is None:
        return out.write

    def write_and_score(start, vectors):
        out.write(start, vectors)
        scorer.add(start, vectors)

    return write_and_score


def _file_bytes(path):
    return Path(path).stat().st_size


def _embed_in_rows(encoder, tokens, ordinals, row_of, device, budget):
    """Every frame's vector, computed in the encoder's own order (longest first) and placed at
    the frame's row of the files: [N, dim] float32, and the run's statistics."""
    order = longest_first(tokens, ordinals)
    rows = row_of[order]
    vectors = np.empty((len(tokens), encoder.dim), dtype=np.float32)

    def place(start, block):
        vectors[rows[start : start + len(block)]] = block

    with torch.inference_mode():
        stats = Engine(encoder, device).run([tokens[i] for i in order], budget, place)
    log.info("%s: %s", encoder.name, stats.summary())
    return vectors, stats


def _attributes(encoder, model_path, device, load_seconds, begun_seconds, stats):
    """What a reader of an embedding file needs to know of how it was made, and the job's
    timings: the model's load, when its first batch began (seconds into the job's work), the
    first batch (with any compiling) and the loop after it."""
    return {
        "model": encoder.info["name"],
        "model_path": str(model_path),
        "random_weights": encoder.info["random_weights"],
        "precision": dtype_name(encoder.dtype),
        "device": device.type,
        "dim": encoder.dim,
        "load_seconds": load_seconds,
        "begun_seconds": begun_seconds,
        "first_batch_seconds": stats.first_batch_seconds,
        "embed_seconds": stats.wall_seconds,
        "tokens": stats.tokens,
        "tokens_per_second": stats.tokens_per_second,
        "rows_per_batch": -1 if stats.rows is None else stats.rows,
        "gpu_busy": -1.0 if stats.gpu_busy is None else stats.gpu_busy,
        "recomputed_in_fp32": stats.recomputed_in_fp32,
        "virnucpro_version": __version__,
    }
