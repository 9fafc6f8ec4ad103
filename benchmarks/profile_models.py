"""Where the GPU time of ESM-2 3B and DNABERT-S batches goes: CUDA kernel time by kind
(matrix products, attention, compiled elementwise, other) from torch.profiler, and ESM-2's
throughput under the torch.compile settings that were tried.

    python benchmarks/profile_models.py --workdir /tmp/bench --dnabert-s DIR --dvf DIR
"""

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from embed_throughput import dna_windows, proteins
from torch.profiler import ProfilerActivity, profile

from virnucpro.embed import NucleotideEncoder, ProteinEncoder
from virnucpro.engine import embed_all
from virnucpro.models import attention, esm2
from virnucpro.models import compile as compile_options
from virnucpro.models.compile import compiled_on_cuda
from virnucpro.models.dnabert_s import DNABertConfig
from virnucpro.random_checkpoints import write_dnabert_s, write_esm2

KINDS = [
    ("attention", ("flash", "fmha", "attention")),
    ("matmul", ("gemm", "nvjet", "xmma")),
    ("compiled elementwise", ("triton",)),
]
BUDGET = 65536


def kind_of(name):
    lowered = name.lower()
    return next((kind for kind, keys in KINDS if any(k in lowered for k in keys)), "other")


def breakdown(title, encoder, tokens):
    embed_all(encoder, tokens[:2000], "cuda", BUDGET)  # compile and warm up
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        _, stats = embed_all(encoder, tokens, "cuda", BUDGET)
    totals, by_kind = defaultdict(float), defaultdict(float)
    for event in prof.key_averages():
        totals[event.key] += event.self_device_time_total
        by_kind[kind_of(event.key)] += event.self_device_time_total
    whole = sum(by_kind.values())
    print(f"\n{title}: {stats.summary()}\nGPU kernel time {whole / 1e6:.2f} s")
    for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:24s} {us / 1e3:9.1f} ms {100 * us / whole:5.1f}%")
    for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {us / 1e3:9.1f} ms {100 * us / whole:5.1f}%  {name[:100]}")


def recompile(**options):
    """Fresh compiled functions for ESM-2 under other torch.compile settings."""
    torch._dynamo.reset()
    compile_options.OPTIONS = {"dynamic": True, **options}
    esm2.first_attention_inputs = compiled_on_cuda(esm2._attention_inputs)
    esm2.between_layers = compiled_on_cuda(esm2._between_layers)
    esm2.last_attention_output_and_mlp = compiled_on_cuda(esm2._attention_output_and_mlp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--dnabert-s", required=True)
    parser.add_argument("--dvf", required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    converted = args.workdir / "esm2_t36_3B_UR50D.safetensors"
    if not converted.exists():
        write_esm2(args.workdir / "esm2_t36_3B_UR50D.pt", 36, 2560, 40, device="cuda")
        esm2.convert_checkpoint(args.workdir / "esm2_t36_3B_UR50D.pt", converted)
    tokens = ProteinEncoder.tokenize(converted, proteins(6000, 166, 166, seed=0))
    encoder = ProteinEncoder.load(converted, torch.device("cuda"), torch.float16)
    breakdown("ESM-2 3B, 166 residues (dense SDPA, uniform batches)", encoder, tokens)
    original_init = attention.PackedRows.__init__

    def varlen_only(self, *args):
        original_init(self, *args)
        self.uniform = False

    attention.PackedRows.__init__ = varlen_only
    _, stats = embed_all(encoder, tokens, "cuda", BUDGET)
    print(f"\nESM-2 3B with the varlen kernel for uniform batches too: {stats.summary()}")
    attention.PackedRows.__init__ = original_init
    for name, options in (
        ("dynamic shapes only", {"dynamic": True}),
        ("coordinate descent tuning", {"options": {"coordinate_descent_tuning": True}}),
        ("max-autotune-no-cudagraphs", {"mode": "max-autotune-no-cudagraphs"}),
    ):
        recompile(**options)
        embed_all(encoder, tokens[:2000], "cuda", BUDGET)
        for budget in (16384, 32768, 65536, 98304):
            embed_all(encoder, tokens[:1000], "cuda", budget)
            _, stats = embed_all(encoder, tokens, "cuda", budget)
            print(f"ESM-2 3B, {name}, {budget} tokens: {stats.summary()}", flush=True)
    recompile()
    directory = args.workdir / "DNABERT-S"
    if not directory.exists():
        write_dnabert_s(
            directory, DNABertConfig(), Path(args.dnabert_s) / "tokenizer.json", device="cuda"
        )
    dna = NucleotideEncoder.load(directory, torch.device("cuda"), torch.float16)
    for low in (166, 30):
        dna_tokens = NucleotideEncoder.tokenize(
            directory, dna_windows(args.dvf, 40000, low, 166, 3)
        )
        dna_tokens.sort(key=len, reverse=True)  # as an embedding job orders them
        print(f"\nmean DNABERT-S tokens {np.mean([len(t) for t in dna_tokens]):.1f}")
        breakdown(f"DNABERT-S, {3 * low + 1}-499 bp", dna, dna_tokens)
        for budget in (131072, 262144):
            _, stats = embed_all(dna, dna_tokens, "cuda", budget)
            print(f"DNABERT-S, {3 * low + 1}-499 bp: {stats.summary()}", flush=True)


if __name__ == "__main__":
    main()
