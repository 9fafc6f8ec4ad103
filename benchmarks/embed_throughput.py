"""Embedding throughput on one GPU: virnucpro's packed engine beside the peers, in one run, on
the same inputs, with random full-size weights (ESM-2 3B: 36 layers, 2560 wide; DNABERT-S: the
real config and tokenizer); ESM-2 also in FP8 (embedding.precision: fp8) on the same frames,
with its per-sequence cosine against fair-esm's fp32 and against our fp16.

    python benchmarks/embed_throughput.py --dvf DIR --dnabert-s DIR --workdir /tmp/bench \
        --out benchmarks/results/<date>-<gpu>.json

Slow baselines run on a prefix of each workload (same inputs, fewer of them); every method is
warmed up first. Model FLOP utilisation is against the bf16 matrix rate measured in the run.
"""

import argparse
import datetime
import gc
import json
import sys
from pathlib import Path

import numpy as np
import torch
from baselines import (
    dnabert_loop,
    dnabert_padded,
    fair_esm,
    hf_esm_embed,
    hf_esm_from_fair_esm,
    timed,
)
from model_flops import bf16_matmul_tflops, dnabert_flops, esm2_flops

from virnucpro.demo.random_checkpoints import write_dnabert_s, write_esm2
from virnucpro.io.fasta import read_records
from virnucpro.models.architectures import ESM2_PRESETS, DNABertConfig
from virnucpro.models.checkpoints import dnabert_s_weights_file
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.models.fp8 import esm2_to_fp8
from virnucpro.runtime.engine import embed_all

AMINO_ACIDS = list("ACDEFGHIKLMNPQRSTVWY")


def per_token(flops, cfg, token_lists):
    """Model FLOPs per token of a workload (model_flops counts each sequence)."""
    lengths = [len(t) for t in token_lists]
    return flops(cfg, lengths) / sum(lengths)


def proteins(n, low, high, seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(AMINO_ACIDS, size=k)) for k in rng.integers(low, high + 1, n)]


def dna_windows(dvf, n, low_residues, high_residues, seed):
    """Real DNA: frame-length windows (3P+1 bases) cut from the DeepVirFinder fragments."""
    genomes = [r.sequence for path in sorted(Path(dvf).glob("*_tr.fa")) for r in read_records(path)]
    rng = np.random.default_rng(seed)
    out = []
    for residues in rng.integers(low_residues, high_residues + 1, n):
        genome = genomes[rng.integers(len(genomes))]
        start = rng.integers(0, len(genome) - 3 * residues - 1)
        out.append(genome[start : start + 3 * residues + 1])
    return out


class Measure:
    """Times methods on one workload and records tokens/s, sequences/s, memory and MFU."""

    def __init__(self, workload, flops_per_token, peak_tflops):
        self.workload, self.flops, self.peak = workload, flops_per_token, peak_tflops
        self.rows = {}

    def run(self, name, fn, token_lists, warmup):
        fn(token_lists[:warmup])
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        result, seconds = timed(lambda: fn(token_lists))
        tokens = sum(len(t) for t in token_lists)
        vectors = result[0] if isinstance(result, tuple) else result
        self.rows[name] = {
            "sequences": len(token_lists),
            "tokens": tokens,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds),
            "sequences_per_s": round(len(token_lists) / seconds, 1),
            "gpu_memory_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "mfu": round(tokens / seconds * self.flops / (self.peak * 1e12), 3),
        }
        if isinstance(result, tuple):
            self.rows[name]["gpu_busy"] = round(result[1].gpu_busy, 3)
        print(f"  {self.workload:12s} {name:34s} {tokens / seconds:>12,.0f} tokens/s", flush=True)
        return torch.as_tensor(vectors)

    def ratios(self, ours):
        for row in self.rows.values():
            row["ours_over_this"] = round(self.rows[ours]["tokens_per_s"] / row["tokens_per_s"], 2)


def agreement(a, b):
    n = min(len(a), len(b))
    a, b = (torch.as_tensor(x)[:n].float().cpu() for x in (a, b))
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return round(cos.min().item(), 6)


def free_gpu():
    gc.collect()
    torch.cuda.empty_cache()


def esm2_baselines(checkpoint, sequences, tokens, measures, n):
    """fair-esm as the original runs it, fair-esm under fp16 autocast, Hugging Face's EsmModel."""
    model, alphabet = fair_esm.load(checkpoint, "cuda")
    reference, hf_vectors = {}, {}
    for w, measure in measures.items():

        def fair(t, w=w, **options):
            return fair_esm.embed(model, alphabet, sequences[w][: len(t)], **options)

        reference[w] = measure.run(
            "fair-esm fp32, 2048 tokens/batch", fair, tokens[w][: 2 * n // 10], 8
        )
        measure.run(
            "fair-esm fp16 autocast, 64k tokens",
            lambda t, f=fair: f(t, toks_per_batch=65536, autocast=torch.float16),
            tokens[w][: 3 * n],
            400,
        )
    hf = hf_esm_from_fair_esm(model, torch.float16)
    model = None
    free_gpu()
    for w, measure in measures.items():
        hf_vectors[w] = measure.run(
            "HF EsmModel fp16 SDPA, 64k tokens",
            lambda t: hf_esm_embed(hf, t, 65536),
            tokens[w][: 3 * n],
            400,
        )
    return reference, hf_vectors


OURS = "virnucpro (default)"
FP8 = "virnucpro fp8 (embedding.precision: fp8)"


def esm2_ours(checkpoint, tokens, measures, n):
    """Our fp16 rows on every workload, then the same encoder turned to FP8 on the same frames:
    ({workload: fp16 vectors}, {workload: FP8 vectors})."""
    encoder = ProteinEncoder.load(checkpoint, torch.device("cuda"), torch.float16)
    default = encoder.max_batch_tokens
    ours, fp8 = {}, {}
    for w, measure in measures.items():
        with torch.compiler.set_stance("force_eager"):
            measure.run(
                "virnucpro eager (no compile)",
                lambda t: embed_all(encoder, t, "cuda", default),
                tokens[w][: 5 * n],
                400,
            )
        if w == "protein_166":
            for budget in (16384, 32768, 65536):
                measure.run(
                    f"virnucpro, {budget // 1024}k tokens",
                    lambda t, b=budget: embed_all(encoder, t, "cuda", b),
                    tokens[w][: 5 * n],
                    400,
                )
        ours[w] = measure.run(
            OURS, lambda t: embed_all(encoder, t, "cuda", default), tokens[w], 400
        )
    esm2_to_fp8(encoder.model)
    for w, measure in measures.items():
        fp8[w] = measure.run(FP8, lambda t: embed_all(encoder, t, "cuda", default), tokens[w], 400)
        measure.ratios(OURS)
    return ours, fp8


def cosine_figures(a, b):
    """Per-sequence cosine of a against b (the first rows both have): min, 1st percentile."""
    rows = min(len(a), len(b))
    a, b = (torch.as_tensor(x)[:rows].float().cpu() for x in (a, b))
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return {
        "sequences": rows,
        "min": round(cos.min().item(), 6),
        "p1": round(torch.quantile(cos, 0.01).item(), 6),
    }


def esm2_section(args, peak, results):
    checkpoint = args.workdir / "esm2_t36_3B_UR50D.pt"
    if not checkpoint.exists():
        write_esm2(checkpoint, 36, 2560, 40, seed=0, device="cuda")
    cfg = ESM2_PRESETS["esm2_t36_3B_UR50D"]
    n = args.scale
    sequences = {
        "protein_50": proteins(36 * n, 50, 50, seed=5),  # the frames of 150 bp reads
        "protein_166": proteins(12 * n, 166, 166, seed=1),  # the frames of 500 bp chunks
        "protein_30_166": proteins(20 * n, 30, 166, seed=2),
    }
    tokens = {w: ProteinEncoder.tokenize(checkpoint, s) for w, s in sequences.items()}
    means = {w: float(np.mean([len(x) for x in t])) for w, t in tokens.items()}
    measures = {w: Measure(w, per_token(esm2_flops, cfg, tokens[w]), peak) for w in sequences}
    reference, hf_vectors = esm2_baselines(checkpoint, sequences, tokens, measures, n)
    free_gpu()
    ours, fp8 = esm2_ours(checkpoint, tokens, measures, n)
    free_gpu()
    for w, measure in measures.items():
        flops = per_token(esm2_flops, cfg, tokens[w])
        results["esm2_t36_3B_UR50D"][w] = {
            "mean_tokens_per_sequence": round(means[w], 1),
            "model_gflop_per_token": round(flops / 1e9, 3),
            "flop_limit_tokens_per_s": round(peak * 1e12 / flops),
            "cosine_min_ours_vs_fair_esm_fp32": agreement(ours[w], reference[w]),
            "cosine_min_ours_vs_hf_fp16": agreement(ours[w], hf_vectors[w]),
            "fp8_over_fp16": round(
                measure.rows[FP8]["tokens_per_s"] / measure.rows[OURS]["tokens_per_s"], 3
            ),
            "cosine_fp8_vs_fair_esm_fp32": cosine_figures(fp8[w], reference[w]),
            "cosine_fp8_vs_ours_fp16": cosine_figures(fp8[w], ours[w]),
            "methods": measure.rows,
        }


def dnabert_workload(directory, state, tokens, measure, n):
    ref = measure.run(
        "original loop, fp32, one at a time", lambda t: dnabert_loop(state, t), tokens[:n], 20
    )
    measure.run(
        "padded fp16 autocast, 256/batch",
        lambda t: dnabert_padded(state, t, 256, torch.float16),
        tokens[: 10 * n],
        512,
    )
    encoder = NucleotideEncoder.load(directory, torch.device("cuda"), torch.float16)
    ours = measure.run(
        OURS, lambda t: embed_all(encoder, t, "cuda", encoder.max_batch_tokens), tokens, 2000
    )
    measure.ratios(OURS)
    return ref, ours


def dnabert_section(args, peak, results):
    directory = args.workdir / "DNABERT-S"
    if not directory.exists():
        write_dnabert_s(
            directory,
            DNABertConfig(),
            Path(args.dnabert_s) / "tokenizer.json",
            seed=0,
            device="cuda",
        )
    cfg = DNABertConfig()
    state = {
        k: v.cuda()
        for k, v in torch.load(dnabert_s_weights_file(directory), weights_only=True).items()
    }
    n = args.scale
    workloads = {
        "dna_499": dna_windows(args.dvf, 20 * n, 166, 166, seed=3),
        "dna_91_499": dna_windows(args.dvf, 30 * n, 30, 166, seed=4),
    }
    for workload, sequences in workloads.items():
        tokens = NucleotideEncoder.tokenize(directory, sequences)
        tokens.sort(key=len, reverse=True)  # the order a shard's frames are embedded in
        mean = float(np.mean([len(t) for t in tokens]))
        measure = Measure(workload, per_token(dnabert_flops, cfg, tokens), peak)
        ref, ours = dnabert_workload(directory, state, tokens, measure, n)
        free_gpu()
        results["DNABERT-S"][workload] = {
            "mean_tokens_per_sequence": round(mean, 1),
            "model_gflop_per_token": round(per_token(dnabert_flops, cfg, tokens) / 1e9, 4),
            "cosine_min_ours_vs_original_fp32": agreement(ours, ref),
            "methods": measure.rows,
        }


def table(results):
    lines = []
    for model in ("esm2_t36_3B_UR50D", "DNABERT-S"):
        for workload, data in results[model].items():
            lines.append(f"\n{model} / {workload} ({data['mean_tokens_per_sequence']} tokens/seq)")
            lines.append(
                f"{'method':36s} {'tokens/s':>11s} {'seq/s':>9s} {'ratio':>6s} "
                f"{'MFU':>5s} {'GiB':>6s}"
            )
            for name, row in data["methods"].items():
                lines.append(
                    f"{name:36s} {row['tokens_per_s']:>11,} {row['sequences_per_s']:>9,} "
                    f"{row['ours_over_this']:>6} {row['mfu']:>5} "
                    f"{row['gpu_memory_peak_gib']:>6}"
                )
            if "fp8_over_fp16" in data:
                to_fp32, to_fp16 = (
                    data["cosine_fp8_vs_fair_esm_fp32"],
                    data["cosine_fp8_vs_ours_fp16"],
                )
                lines.append(
                    f"FP8 at {data['fp8_over_fp16']}x fp16; per-sequence cosine against fair-esm "
                    f"fp32 ({to_fp32['sequences']} sequences) min {to_fp32['min']}, 1st pct "
                    f"{to_fp32['p1']}; against fp16 min {to_fp16['min']}, 1st pct {to_fp16['p1']}"
                )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dvf", required=True, help="folder of the DeepVirFinder *_tr.fa files")
    parser.add_argument("--dnabert-s", required=True, help="folder with the real tokenizer.json")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--scale", type=int, default=1000, help="workload size unit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    peak = bf16_matmul_tflops()
    print(f"bf16 matmul 8192^3: {peak:.0f} TFLOP/s", flush=True)
    results = {"esm2_t36_3B_UR50D": {}, "DNABERT-S": {}}
    dnabert_section(args, peak, results)
    esm2_section(args, peak, results)
    gpu = torch.cuda.get_device_name()
    record = {
        "benchmark": "embed_throughput",
        "date": datetime.date.today().isoformat(),
        "device": gpu,
        "command": " ".join(["python", *sys.argv]),
        "torch": torch.__version__,
        "bf16_matmul_tflops": round(peak, 1),
        "results": results,
    }
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(
            f"# embed_throughput, {record['date']}, {gpu}\n\n`{record['command']}`\n\n"
            f"bf16 matmul: {peak:.0f} TFLOP/s\n\n```{table(results)}\n```\n"
        )


if __name__ == "__main__":
    main()
