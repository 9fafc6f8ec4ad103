"""Where the GPU time of ESM-2 3B and DNABERT-S goes, batch by batch, as an embedding job
computes them: CUDA kernel time by kind (matrix products, attention, compiled elementwise,
other) from torch.profiler, and each kind's share, on the frames of 150 bp reads cut from real
sequence and on 166-residue proteins (the frames of 500 bp chunks).

    python benchmarks/profile_models.py --genomes DIR --workdir /tmp/profile \
        > benchmarks/results/<date>-<gpu>-profile.txt
"""

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from compile_modes import frames_of_reads
from full_models import full_models
from samples import read_genomes
from torch.profiler import ProfilerActivity, profile

from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.runtime.engine import auto_batch_tokens, embed_all

KINDS = [
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("matmul", ("gemm", "nvjet", "xmma")),
    ("compiled elementwise", ("triton",)),
]
AMINO_ACIDS = list("ACDEFGHIKLMNPQRSTVWY")


def kind_of(name):
    lowered = name.lower()
    return next((kind for kind, keys in KINDS if any(k in lowered for k in keys)), "other")


def breakdown(title, encoder, tokens):
    """Embed `tokens` (longest first) as a job does, once to compile, once under the profiler."""
    tokens = sorted(tokens, key=len, reverse=True)
    budget = auto_batch_tokens(
        encoder.bytes_per_token, torch.device("cuda"), encoder.max_batch_tokens
    )
    embed_all(encoder, tokens, "cuda", budget)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        _, stats = embed_all(encoder, tokens, "cuda", budget)
    totals, by_kind = defaultdict(float), defaultdict(float)
    for event in prof.key_averages():
        totals[event.key] += event.self_device_time_total
        by_kind[kind_of(event.key)] += event.self_device_time_total
    whole = sum(by_kind.values())
    print(f"\n{title}: {stats.summary()}\nGPU kernel time {whole / 1e6:.2f} s", flush=True)
    for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:24s} {us / 1e3:9.1f} ms {100 * us / whole:5.1f}%")
    for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {us / 1e3:9.1f} ms {100 * us / whole:5.1f}%  {name[:100]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=Path, required=True, help="FASTA files of real DNA")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--esm2-tokens", type=int, default=1_000_000)
    args = parser.parse_args()
    models = full_models(args.workdir / "models")
    frames = frames_of_reads(read_genomes(args.genomes), args.esm2_tokens, seed=2)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")

    dna = NucleotideEncoder.load(models["dnabert_s"], torch.device("cuda"), torch.float16)
    tokens = NucleotideEncoder.tokenize(models["dnabert_s"], [n for n, _ in frames])
    breakdown("DNABERT-S, frames of 150 bp reads", dna, tokens)
    del dna
    protein = ProteinEncoder.load(models["esm2"], torch.device("cuda"), torch.float16)
    breakdown(
        "ESM-2 3B, frames of 150 bp reads",
        protein,
        ProteinEncoder.tokenize(models["esm2"], [p for _, p in frames]),
    )
    rng = np.random.default_rng(0)
    uniform = ["".join(rng.choice(AMINO_ACIDS, 166)) for _ in range(6000)]
    breakdown("ESM-2 3B, 166 residues", protein, ProteinEncoder.tokenize(models["esm2"], uniform))


if __name__ == "__main__":
    main()
