"""The embedding stage: one shard of frames in, one HDF5 file of per-frame vectors per model out.

One job embeds a shard with the models its classifier takes (DNABERT-S, ESM-2 or both), so each
is loaded once per shard and the GPU is never idle between them: DNABERT-S (small) computes
first while ESM-2 moves to the GPU beside it (ESM-2's compiling holds DNABERT-S's next batches
back: models.compile.MODEL_CALLS), then ESM-2. The files list the frames in one order, the last
model's (longest first, the order it computes and streams them in), so that the classifier reads
them side by side in blocks. With a classifier given, the job also scores the frames on the CPU
while the GPU computes the last model (scoring.StreamingScorer) and stores the scores in that
model's file, so that classifying the shard needs no pass over its vectors.

A job runs in three phases, so that the next job on its GPU can start while it computes and
compute as soon as it is done (where Snakemake runs two embedding jobs per GPU):
1. the CPU phase, before any CUDA call (the GPU's lease sets the devices the job sees, and the
   first CUDA call fixes them): read the shard's columns that the models take, a block at a
   time, tokenized into one TokenStore per model; read the checkpoints onto the CPU; write the
   frames into the files (the compiler's import starts CUDA, so it waits for the lease);
2. the GPU phase, under the lease (gpu_lease.GpuLease): import the compiler beside moving the
   models to the GPU, warm up
   each one's compiled kernels on a batch of filler of the shape its loop computes
   (Engine.warm_up), run the loops (ESM-2's FP8 gate before its loop where the precision is
   fp8); then give the GPU its memory back and release the lease;
3. finish the files: their last writes, the scores, the attributes.
A job that finds the GPU free at its start (the first of a run) takes the lease at once and
starts the GPU (context, first model, warm-up) beside its CPU phase.
"""

import gc
import importlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..calls.fidelity import GateSettings, check, measure
from ..calls.scoring import job_classifier, job_scorer, store_scores
from ..io.h5store import embedding_writer
from ..io.shards import shard_blocks, shard_entry
from ..models.compile import eager_in_this_thread
from ..models.encoders import ENCODERS, Encoder
from ..models.fp8 import esm2_to_fp8
from ..models.packing import TokenStore
from ..runtime.device import FP8, check_fp8, dtype_name, resolve_device, resolve_dtype
from ..runtime.engine import Engine, auto_batch_tokens, embed_all
from ..runtime.gpu_lease import GpuLease

log = logging.getLogger(__name__)

COMPILER = "torch._inductor.compile_fx"  # seconds to import: in the CPU phase


def longest_first(tokens, ordinals):
    """Indices of a TokenStore's sequences longest first, ties in input order: batches then
    hold sequences of about one length, which pack densely."""
    return np.lexsort((ordinals, -tokens.lengths))


def vector_dtype(dtype):
    """The dtype a job computing in `dtype` stores its vectors in: float16 for fp16 (and FP8,
    whose vectors are fp16's), which keeps every digit the model computes; float32 for fp32,
    and for bf16, whose range float16 does not hold."""
    return np.float16 if dtype == torch.float16 else np.float32


@dataclass(frozen=True)
class _Job:
    """What a job was asked for, and when it started (its timeline's zero)."""

    device: str  # "auto", "cuda" or "cpu"
    precision: str  # "auto", a key of device.PRECISIONS, or FP8
    batch_tokens: int | None  # None: each model's budget from the GPU's free memory
    fp8_gate: GateSettings
    started: float  # time.perf_counter()

    def in_fp8(self, kind):
        return self.precision == FP8 and kind == "esm2"  # DNABERT-S stays fp16 (models.fp8)


@dataclass(frozen=True)
class _Shard:
    """A shard as the job holds it: its frames' ordinals (in the table's order), their tokens
    by model ({kind: TokenStore}), the files' order of the frames (indices), the row of each
    frame in the files, and the FP8 gate's sample (indices of the first frames by ordinal)."""

    ordinals: np.ndarray
    tokens: dict
    in_file_order: np.ndarray
    row_of: np.ndarray
    sample: np.ndarray


@dataclass
class _Model:
    """One model of the job on its device: its batch budget, the seconds its move to the
    device and its warm-up took, the rows its kernels are warm for, and, where it runs in FP8,
    the gate's fp16 vectors of the sample."""

    encoder: Encoder
    budget: int
    load_seconds: float
    warm_rows: int | None = None
    warm_up_seconds: float = 0.0
    fp16_vectors: np.ndarray | None = None


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
    lease=None,
):
    """Embed every frame of one shard of a sample's frame table (io.shards.frame_table) with the
    models of `outputs` ({kind: HDF5 path}, kinds of ENCODERS, one or both) loaded from
    `model_paths` ({kind: checkpoint}), one file per model, all in the last model's order; score
    the frames with `classifier_path` if given. With precision `fp8`, ESM-2's linear layers run
    in FP8 once `fp8_gate` (a fidelity.GateSettings) is passed on the shard's first frames
    (_fp8_gate). `lease` (a gpu_lease.GpuLease; by default one of no device) is held for the
    GPU phase: taken at the job's start if it is free, else once the CPU phase is done, and
    released once the GPU's work is, before the files are finished. Returns {kind: the
    engine's RunStats}."""
    outputs = {kind: outputs[kind] for kind in ENCODERS if kind in outputs}  # features order
    kinds = list(outputs)
    first, *later = kinds
    lease = GpuLease(()) if lease is None else lease
    job = _Job(device, precision, batch_tokens, fp8_gate or GateSettings(), time.perf_counter())
    # the later models' weights arrive while the first computes: its budget leaves them room
    reserved = sum(_weights_bytes(kind, model_paths[kind]) for kind in later)
    try:
        with ExitStack() as files, ThreadPoolExecutor(6, thread_name_prefix="embed") as pool:
            read = {kind: pool.submit(ENCODERS[kind].read, model_paths[kind]) for kind in kinds}
            classifier = pool.submit(job_classifier, classifier_path)
            entry = shard_entry(frames_tsv, manifest_tsv, shard)
            started = compiler = None
            if lease.try_take():  # the GPU is free: it starts while the shard is read
                compiler = _import_compiler(pool, job, lease)
                residues = int(entry["frames"]) and int(entry["max_residues"])
                started = pool.submit(_start_beside, first, read[first], job, reserved, residues)

            # 1. the CPU phase: no CUDA call
            data, file_ids = _read_shard(frames_tsv, manifest_tsv, shard, kinds, model_paths, job)
            out, file_ordinals = {}, data.ordinals[data.in_file_order]
            for kind in kinds:  # both or neither: every file is finished only when the last is
                writer = embedding_writer(outputs[kind], file_ordinals, file_ids)
                out[kind] = files.enter_context(writer)
            del file_ids  # in the files now
            encoders = {kind: future.result() for kind, future in read.items()}
            _mark("CPU phase done", job)

            # 2. the GPU phase, under the lease
            if started is None:
                lease.take()
                compiler = _import_compiler(pool, job, lease)
                device, dtype = _start_gpu(job)
                model = {first: _on_device(encoders[first], device, dtype, job, reserved)}
            else:
                device, dtype, model = started.result()
            if compiler is not None:
                compiler.result()
            log.info(
                "%d frames of %s in %s; %s on %s (%s, CUDA_VISIBLE_DEVICES=%s)",
                len(data.ordinals),
                shard,
                frames_tsv,
                " and ".join(ENCODERS[kind].name for kind in kinds),
                device,
                dtype_name(dtype),
                os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            )
            for kind in kinds:
                out[kind].vectors(encoders[kind].dim, vector_dtype(dtype))
            _ready(model[first], first, data, device, job)
            for kind in later:  # each moves to the GPU and warms up while the first computes
                model[kind] = pool.submit(_bring_up, encoders[kind], kind, data, device, dtype, job)
            stats, begun = {}, {}
            earlier = []  # the vectors of the models before the last, by row in the files
            for kind in kinds[:-1]:
                if kind in later:
                    model[kind] = model[kind].result()
                begun[kind] = _mark(f"{ENCODERS[kind].name} loop begins", job)
                vectors, stats[kind] = _embed_in_rows(model[kind], kind, data, device, out[kind])
                earlier.append(vectors)
            last = kinds[-1]
            if last in later:
                model[last] = model[last].result()
            scorer = job_scorer(
                classifier.result(),
                classifier_path,
                earlier,
                encoders[last],
                outputs,
                len(data.ordinals),
            )
            if job.in_fp8(last):
                fits = None if scorer is None else classifier.result()[0]
                gate = _fp8_gate(model[last], data, earlier, fits, device, job, outputs[last])
                out[last].attrs.update(gate.attributes())
            begun[last] = _mark(f"{ENCODERS[last].name} loop begins", job)
            with torch.inference_mode():
                stats[last] = Engine(model[last].encoder, device).run(
                    data.tokens[last][data.in_file_order],
                    model[last].budget,
                    _sink(out[last], scorer),
                )
            log.info("%s: %s", ENCODERS[last].name, stats[last].summary())
            _free_gpu(model.values(), device)
            lease.release()
            _mark("GPU work done, lease released", job)

            # 3. the files
            if scorer is not None:
                store_scores(out[last], scorer, classifier.result()[1])
            for kind in kinds:
                out[kind].attrs.update(
                    _attributes(model[kind], model_paths[kind], device, begun[kind], stats[kind])
                )
                if job.in_fp8(kind):
                    out[kind].attrs["precision"] = FP8
    finally:
        lease.release()
    _mark("shard embedded, its files finished", job)
    for kind in kinds:
        if encoders[kind].info["random_weights"]:
            log.warning(
                "the %s weights are RANDOM (demo/test checkpoint): embeddings mean nothing", kind
            )
    return stats


def _read_shard(frames_tsv, manifest_tsv, shard, kinds, model_paths, job):
    """The _Shard of the models of `kinds`, and its frame ids in the files' order: the columns
    the models take read and tokenized a block at a time, so that no more than a block's text
    and its tokenizer's objects is held at once."""
    tokenizers = {kind: ENCODERS[kind].tokenizer(model_paths[kind]) for kind in kinds}
    columns = ("ordinal", "frame_id", *(ENCODERS[kind].column for kind in kinds))
    ordinals, frame_ids, tokens = [], [], {kind: [] for kind in kinds}
    for block in shard_blocks(frames_tsv, manifest_tsv, shard, columns):
        ordinals.append(block["ordinal"])
        frame_ids += block["frame_id"]
        for kind in kinds:
            tokens[kind].append(tokenizers[kind](block[ENCODERS[kind].column]))
    ordinals = np.concatenate([np.empty(0, np.int64), *ordinals])
    tokens = {kind: TokenStore.concatenate(blocks) for kind, blocks in tokens.items()}
    _mark(f"{len(ordinals)} frames read and tokenized", job)
    # the files list the frames in the order the last model computes and streams them in
    in_file_order = longest_first(tokens[kinds[-1]], ordinals)
    row_of = np.empty(len(ordinals), dtype=np.int64)
    row_of[in_file_order] = np.arange(len(ordinals))
    sample = np.argsort(ordinals, kind="stable")[: job.fp8_gate.frames]
    data = _Shard(ordinals, tokens, in_file_order, row_of, sample)
    return data, [frame_ids[i] for i in in_file_order]


def _import_compiler(pool, job, lease):
    """The compiler's import (seconds) begun in `pool`, where the job computes on a GPU (on the
    CPU nothing is compiled, models.compile); only under the lease: the import starts CUDA,
    which then keeps the devices the process saw before the lease named its own
    (tests/test_gpu.py)."""
    return pool.submit(importlib.import_module, COMPILER) if _on_gpu(job, lease) else None


def _on_gpu(job, lease):
    """Whether the job will compute on a GPU, told without a CUDA call: `cuda` asked for, or
    `auto` with a device to lease or one granted (SLURM's CUDA_VISIBLE_DEVICES)."""
    if job.device != "auto":
        return job.device == "cuda"
    return bool(lease.devices or os.environ.get("CUDA_VISIBLE_DEVICES", "").strip())


def _start_gpu(job):
    """The job's device and dtype, the GPU's context created (a second or more on some
    machines, which the first model's move and batch need not wait for)."""
    device = resolve_device(job.device)
    dtype = resolve_dtype(job.precision, device)
    if job.precision == FP8:
        check_fp8(device)
    if device.type == "cuda":
        torch.cuda.init()
        torch.empty(1, device=device)
        _mark("CUDA context created", job)
    return device, dtype


def _start_beside(kind, encoder, job, reserved, residues):
    """The GPU phase's start beside the CPU phase: (device, dtype, {kind: the first model on
    the device}), its kernels warm for the loop's batches where the manifest's longest frame
    (`residues`; 0 for a shard of none) shows them to be the budget's rows; else _ready warms
    them once the shard's tokens give their rows."""
    device, dtype = _start_gpu(job)
    model = _on_device(encoder.result(), device, dtype, job, reserved)
    engine = Engine(model.encoder, device)
    longest = ENCODERS[kind].most_tokens(residues)
    if residues and not job.in_fp8(kind) and engine.rows([longest], model.budget) == model.budget:
        importlib.import_module(COMPILER)  # imported in the CPU phase: waits for it if need be
        _warm_up(model, engine, model.budget, job)
    return device, dtype, {kind: model}


def _on_device(encoder, device, dtype, job, reserved=0):
    """A model read onto the CPU, moved to the device, with its batch budget: a model read
    later leaves room for `reserved` bytes more."""
    moving = time.perf_counter()
    encoder.to(device, dtype)
    budget = job.batch_tokens or auto_batch_tokens(
        encoder.bytes_per_token, device, encoder.max_batch_tokens, reserved
    )
    model = _Model(encoder, budget, time.perf_counter() - moving)
    _mark(f"{encoder.name} on the {device.type} in {model.load_seconds:.1f} s", job)
    return model


def _ready(model, kind, data, device, job):
    """Make a model on its device ready for its loop: in FP8, the gate's fp16 vectors of the
    sample computed and the layers turned to FP8; the kernels warm for its loop's batches."""
    tokens = data.tokens[kind]
    if job.in_fp8(kind):
        model.fp16_vectors = _fp16_vectors(model, tokens[data.sample], device)
        esm2_to_fp8(model.encoder.model)
    if len(tokens):
        engine = Engine(model.encoder, device)
        _warm_up(model, engine, engine.rows(tokens.lengths, model.budget), job)


def _bring_up(encoder, kind, data, device, dtype, job):
    """A later model on the device and ready, beside the first model's loop."""
    model = _on_device(encoder, device, dtype, job)
    _ready(model, kind, data, device, job)
    return model


def _warm_up(model, engine, rows, job):
    """Warm the model's kernels for batches of `rows` rows, unless they are (or, on the CPU,
    rows None, there are none)."""
    if rows == model.warm_rows:
        return
    seconds = engine.warm_up(rows)
    model.warm_rows, model.warm_up_seconds = rows, model.warm_up_seconds + seconds
    _mark(f"{model.encoder.name} warmed up for batches of {rows} rows in {seconds:.1f} s", job)


def _fp16_vectors(model, tokens, device):
    """The FP8 gate's reference: the sample's vectors in fp16, uncompiled (compiling kernels
    that the job would use for these frames alone costs more than computing them without),
    and, with no compiled shape to keep, in batches of up to twice the job's (so 2,000 frames
    of reads in one, not two mostly filled with filler)."""
    budget = min(int(tokens.lengths.sum()), 2 * model.budget)
    with eager_in_this_thread():
        vectors, _ = embed_all(model.encoder, tokens, device, budget)
    return vectors


def _fp8_gate(model, data, earlier, classifier, device, job, path):
    """Embed the sample (the shard's first `job.fp8_gate.frames` frames by ordinal) with the
    model's FP8 layers, compare that with its fp16 vectors (_ready), and stop the job
    (fidelity.FidelityError) unless the two agree as the gate's settings ask; returns the
    GateReport. `classifier`: the sample's classifier where it takes these models' features
    (scoring.job_scorer's check), else None; the calls compared are the classifier's on the
    `earlier` models' vectors (by row in the files) beside ESM-2's."""
    fp8, _ = embed_all(model.encoder, data.tokens["esm2"][data.sample], device, model.budget)
    earlier = [vectors[data.row_of[data.sample]] for vectors in earlier]
    report = measure(model.fp16_vectors, fp8, classifier, earlier)
    log.info("%s: %s", path, report.describe())
    check(report, job.fp8_gate, path)
    return report


def _free_gpu(models, device):
    """Give the GPU the memory of the job's models back, for the next job on it: their weights
    emptied, and the compiled graphs dropped with whatever of them they hold (the job compiles
    nothing more)."""
    for model in models:
        model.encoder.free()
    if device.type == "cuda":
        torch._dynamo.reset()
        gc.collect()  # a block and its compiled methods (models.compile) refer to each other
        torch.cuda.empty_cache()
        log.info(
            "GPU memory given back: %.0f MiB still allocated",
            torch.cuda.memory_allocated(device) / 2**20,
        )


def _mark(event, job):
    """Log when a step of the job ended (its timeline, where its start's cost shows); return
    that."""
    seconds = time.perf_counter() - job.started
    log.info("%s: %.2f s into the job", event, seconds)
    return seconds


def _weights_bytes(kind, path):
    return Path(ENCODERS[kind].weights_file(path)).stat().st_size


def _sink(out, scorer):
    """The engine's callback: each block of vectors to the file as it stores them, and those
    stored values to the scorer if any, so that its scores are those of the file's vectors."""

    if scorer is None:
        return out.write

    def write_and_score(start, vectors):
        scorer.add(start, out.write(start, vectors))

    return write_and_score


def _embed_in_rows(model, kind, data, device, out):
    """Every frame's vector, computed in the model's own order (longest first) and placed, as
    the file stores it, at the frame's row of the files: [N, dim], written to `out` too; and
    the run's statistics."""
    tokens = data.tokens[kind]
    order = longest_first(tokens, data.ordinals)
    rows = data.row_of[order]
    vectors = np.empty((len(tokens), model.encoder.dim), dtype=out.dtype)

    def place(start, block):
        vectors[rows[start : start + len(block)]] = out.stored(block)

    with torch.inference_mode():
        stats = Engine(model.encoder, device).run(tokens[order], model.budget, place)
    log.info("%s: %s", model.encoder.name, stats.summary())
    out.write(0, vectors)
    return vectors, stats


def _attributes(model, model_path, device, begun_seconds, stats):
    """What a reader of an embedding file needs to know of how it was made, and the job's
    timings: the model's move to the device (its checkpoint read in the CPU phase) and
    warm-up, when its loop began (seconds into the job), the first batch and the loop after
    it."""
    encoder = model.encoder
    return {
        "model": encoder.info["name"],
        "model_path": str(model_path),
        "random_weights": encoder.info["random_weights"],
        "precision": dtype_name(encoder.dtype),
        "device": device.type,
        "dim": encoder.dim,
        "load_seconds": model.load_seconds,
        "warm_up_seconds": model.warm_up_seconds,
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
