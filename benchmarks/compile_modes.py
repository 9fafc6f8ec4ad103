"""torch.compile settings for the embedding models, each in a fresh process as an embedding job
runs: once with an empty compile cache (a first run) and once with the cache that run filled.
Per setting: model load, the first batch (compiling and tuning included) and the loop's
tokens/s on the frames of 150 bp reads cut from real sequence, every batch computed in the
job's one row count. Also the ESM-2 3B load time from the fair-esm checkpoint.

    python benchmarks/compile_modes.py --genomes DIR --workdir /tmp/modes \
        --out benchmarks/results/<date>-<gpu>-compile-modes.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from full_models import full_models
from record import save
from samples import read_genomes, reads

from virnucpro.models import esm2
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.models.packing import PackedBatch
from virnucpro.runtime.engine import Engine, auto_batch_tokens
from virnucpro.sequences.frames import kept_frames

MODES = {
    "static": {"dynamic": False},
    "static, coordinate descent": {
        "dynamic": False,
        "options": {"coordinate_descent_tuning": True},
    },
    "static, max-autotune": {"dynamic": False, "mode": "max-autotune-no-cudagraphs"},
    "dynamic": {"dynamic": True},
}
ENCODERS = {"esm2": ProteinEncoder, "dnabert_s": NucleotideEncoder}


def frames_of_reads(genomes, esm2_tokens, seed):
    """(nucleotide, protein) of the kept frames of 150 bp reads, up to `esm2_tokens` tokens."""
    frames, tokens = [], 0
    for _, read in reads(genomes, 10**9, 150, seed):
        for frame in kept_frames(read):
            frames.append((frame.nucleotide, frame.protein))
            tokens += len(frame.protein) + 2
        if tokens >= esm2_tokens:
            return frames
    return frames


def child(args):
    """One job's worth: load, then embed every frame longest first; print the timings."""
    from virnucpro.models import compile as compile_settings

    compile_settings.OPTIONS = MODES[args.mode] if args.mode else compile_settings.OPTIONS
    frames = json.loads(args.frames.read_text())
    encoder_type = ENCODERS[args.kind]
    device = torch.device("cuda")
    started = time.perf_counter()
    encoder = encoder_type.load(args.model, device, torch.float16)
    if args.load_only:  # a forward pass of one protein, so that every weight has arrived
        encoder(PackedBatch.from_token_lists([esm2.tokenize("MKTAYIAKQRQ")]).to(device))
        torch.cuda.synchronize()
        print(json.dumps({"load_s": round(time.perf_counter() - started, 2)}))
        return
    load = time.perf_counter() - started
    texts = [protein if args.kind == "esm2" else dna for dna, protein in frames]
    tokens = sorted(encoder_type.tokenize(args.model, texts), key=len, reverse=True)
    budget = auto_batch_tokens(encoder.bytes_per_token, device, encoder.max_batch_tokens)
    with torch.inference_mode():
        stats = Engine(encoder, device).run(tokens, budget, lambda start, vectors: None)
    print(
        json.dumps(
            {
                "load_s": round(load, 2),
                "first_batch_s": round(stats.first_batch_seconds, 2),
                "loop_s": round(stats.wall_seconds, 2),
                "tokens_per_s": round(stats.tokens_per_second),
                "rows_per_batch": stats.rows,
                "batches": stats.batches,
                "gpu_busy": round(stats.gpu_busy, 4),
            }
        )
    )


def run_child(args, kind, model, mode=None, cache=None, load_only=False):
    command = [sys.executable, __file__, "--child", "--kind", kind, "--model", str(model)]
    command += ["--frames", str(args.workdir / "frames.json"), "--genomes", str(args.genomes)]
    command += ["--workdir", str(args.workdir)]
    command += ["--mode", mode] if mode else []
    command += ["--load-only"] if load_only else []
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache or args.workdir / "cache-load")}
    state = "warm" if cache and cache.exists() else "cold"
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=540)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 2)
    print(kind, mode or "load", state, result, flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=Path, required=True, help="FASTA files of real DNA")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--esm2-tokens", type=int, default=1_000_000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--dnabert-modes", nargs="+", default=["static"], choices=list(MODES))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=list(ENCODERS), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    models = full_models(args.workdir / "models")
    frames = frames_of_reads(read_genomes(args.genomes), args.esm2_tokens, seed=1)
    (args.workdir / "frames.json").write_text(json.dumps(frames))

    loads = {
        path.name: [run_child(args, "esm2", path, load_only=True) for _ in range(2)]
        for path in (models["esm2"],)
    }
    runs = {"esm2": {}, "dnabert_s": {}}
    for kind, model, modes in (
        ("esm2", models["esm2"], args.modes),
        ("dnabert_s", models["dnabert_s"], args.dnabert_modes),
    ):
        for index, mode in enumerate(modes):
            cache = args.workdir / f"cache-{kind}-{index}"
            shutil.rmtree(cache, ignore_errors=True)
            cold = run_child(args, kind, model, mode, cache)
            runs[kind][mode] = {"cold": cold, "warm": run_child(args, kind, model, mode, cache)}
    lines = [f"{'model, setting':40s} {'first batch cold/warm s':>24s} {'tokens/s':>10s}"]
    for kind, by_mode in runs.items():
        for mode, run in by_mode.items():
            first = f"{run['cold']['first_batch_s']} / {run['warm']['first_batch_s']}"
            rate = np.mean([run[s]["tokens_per_s"] for s in ("cold", "warm")])
            lines.append(f"{kind + ', ' + mode:40s} {first:>24s} {rate:>10,.0f}")
    save(
        "compile_modes",
        torch.cuda.get_device_name(),
        args.out,
        torch=torch.__version__,
        frames=len(frames),
        esm2_tokens=sum(len(p) + 2 for _, p in frames),
        esm2_load_s=loads,
        runs=runs,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
