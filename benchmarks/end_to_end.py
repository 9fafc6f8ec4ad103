"""A user's run, end to end: the workflow through profiles/local on a sample cut from real
sequence, with random full-size models in the published formats (ESM-2 3B, DNABERT-S with its
real config and tokenizer, the 3328-feature classifiers), on the GPUs the machine shows.

    python benchmarks/end_to_end.py --genomes DIR --workdir /tmp/e2e --sample reads \
        --runs cold warm [--precision fp8] --out benchmarks/results/<date>-<gpu>-e2e-reads.json
    python benchmarks/end_to_end.py --summarize benchmarks/results/*-e2e-*.json

Samples: `reads` is 300,000 reads of 150 bp at chunk 300, `contigs` 3,000 contigs of 1-20 kb at
chunk 500, cut at random positions on both strands of the FASTA files in --genomes (the
DeepVirFinder fragments). A `cold` run starts with an empty compile cache in resources/, as a
first run on a new installation does; a `warm` run keeps it, as every later run does. Every run
starts from the sample FASTA (a fresh results/).

Per run: wall time; each embedding job's wait for its GPU lease, model loads, first batch
(compiling and tuning) and loop per model, with tokens/s; every other job's time (Snakemake's
benchmark files); each GPU's busy fraction over the whole wall, sampled from the driver (NVML)
every 50 ms; the bf16 matrix rate measured in this run; and the end-to-end model FLOP
utilisation, MFU = model FLOPs of the sample (both models, every frame) / (wall x GPUs x that
rate), whatever `--precision` the run embeds in (so an FP8 run's MFU is counted against the
16-bit rate), and an FP8 run's gate figures per job. After the runs, the engine alone
(embed_throughput.py's path) embeds the first frames of a shard in a fresh process, for the
in-job loop to be compared with.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from model_flops import bf16_matmul_tflops, frame_table_flops
from samplers import gpu_indices
from samples import contigs, read_genomes, reads, write_fasta
from workflow_run import (
    embedding_jobs,
    frame_table,
    job_table,
    run_workflow,
    write_run_config,
)

SAMPLES = {
    "reads": {"chunk_size": 300, "make": lambda g, n: reads(g, n, 150, seed=0), "n": 300_000},
    "contigs": {
        "chunk_size": 500,
        "make": lambda g, n: contigs(g, n, 1000, 20000, seed=0),
        "n": 3_000,
    },
}
# broadinstitute/virnucpro-broad, computed from its own report (reports/150bp_benchmark_report.md):
# 16.5k ESM-2 tokens/s on an RTX 4090 (165 TFLOP/s fp16 tensor rate), 81% of the wall in ESM-2.
PEER = {
    "system": "broadinstitute/virnucpro-broad (their report, their 150 bp sample, RTX 4090)",
    "mfu": {"1 GPU": 0.44, "2 GPUs": 0.35},
}


def prepare(args, sample):
    """Models, the sample FASTA and the run directory's config; what exists is kept."""
    from full_models import full_models

    models = full_models(args.workdir / "models")
    spec = SAMPLES[sample]
    fasta = args.workdir / f"{sample}.fa"
    if not fasta.exists():
        write_fasta(spec["make"](read_genomes(args.genomes), args.n or spec["n"]), fasta)
    run = args.workdir / f"run-{sample}"
    row = {
        "sample": sample,
        "fasta": fasta,
        "chunk_size": spec["chunk_size"],
        "chunking": "overlap",
    }
    write_run_config(run, [row], models, args.precision)
    return run


def sample_flops(run, sample):
    """Frames, tokens and model FLOPs of every frame the workflow embedded (both models)."""
    from virnucpro.models.architectures import ESM2_PRESETS, DNABertConfig

    configs = {"esm2": ESM2_PRESETS["esm2_t36_3B_UR50D"], "dnabert_s": DNABertConfig()}
    checkpoint = yaml.safe_load((run / "config" / "config.yaml").read_text())["models"]
    return frame_table_flops(frame_table(run, sample), configs, checkpoint["dnabert_s"])


def engine_check(args, run, sample, max_tokens):
    """The engine alone on the first frames of shard_0000 in the job's order, fresh process."""
    command = [sys.executable, __file__, "--engine-check", str(run), "--sample", sample]
    command += ["--genomes", str(args.genomes), "--workdir", str(args.workdir)]
    command += ["--engine-tokens", str(max_tokens)]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(run / "resources/torch_compile_cache")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def engine_check_child(run, sample, max_tokens):
    import torch

    from virnucpro.io.shards import read_shard
    from virnucpro.models.encoders import ProteinEncoder
    from virnucpro.runtime.engine import auto_batch_tokens, consecutive_ranges, embed_all
    from virnucpro.stages.embed import longest_first

    shards = run / "results" / sample / "shards"
    ordinals, _, _, proteins = read_shard(
        shards / "frames.tsv", shards / "manifest.tsv", "shard_0000"
    )
    checkpoint = yaml.safe_load((run / "config" / "config.yaml").read_text())["models"]["esm2"]
    encoder = ProteinEncoder.load(checkpoint, torch.device("cuda"), torch.float16)
    tokens = ProteinEncoder.tokenize(checkpoint, proteins)
    tokens = [tokens[i] for i in longest_first(tokens, ordinals)]
    budget = auto_batch_tokens(
        encoder.bytes_per_token, torch.device("cuda"), encoder.max_batch_tokens
    )
    # whole batches only, as in the job: a last batch of a few sequences would be mostly filler
    lengths = [len(t) for t in tokens]
    ends = [end for _, end in consecutive_ranges(lengths, 0, budget)]
    kept = next((end for end in ends if sum(lengths[:end]) >= max_tokens), len(tokens))
    _, stats = embed_all(encoder, tokens[:kept], "cuda", budget)
    print(json.dumps({"tokens": stats.tokens, "tokens_per_s": round(stats.tokens_per_second)}))


def prime(args, run, sample):
    """Fill the run's compile cache with a small sample of the same kind (the kernels are
    compiled for the batch shape, not the sample), so that a warm run can be measured on a
    fresh machine without a whole cold run before it."""
    sheet = run / "config" / "samples.tsv"
    full = sheet.read_text()
    small = args.workdir / f"{sample}-prime.fa"
    spec = SAMPLES[sample]
    write_fasta(spec["make"](read_genomes(args.genomes), args.prime), small)
    sheet.write_text(full.replace(str(args.workdir / f"{sample}.fa"), str(small)))
    try:
        wall = run_workflow(run, cold=True).wall_s
    finally:
        sheet.write_text(full)
    print(f"primed with {args.prime} {sample} in {wall:.1f} s", flush=True)


def measure(run, sample, state, rates, flops=None):
    done = run_workflow(run, cold=state == "cold")
    wall, busy, jobs = done.wall_s, done.gpu_busy, job_table(run, done.started)
    flops = flops or sample_flops(run, sample)
    gpus = len(busy)
    rate = float(np.mean(list(rates.values())))
    result = {
        "wall_s": round(wall, 1),
        "mfu": round(flops["model_tflop"] / (wall * gpus * rate), 3),
        "gpu_busy_over_wall": busy,
        "embedding_jobs": embedding_jobs(run, sample, jobs),
        "jobs": jobs,
    }
    print(f"{sample} {state} on {gpus} GPU(s): {wall:.1f} s, MFU {result['mfu']}", flush=True)
    return flops, result


def summarize(paths):
    """A markdown table of every run in the given result files, the peer's figures beside."""
    lines = [
        "| sample | GPUs | run | wall s | end-to-end MFU | GPU busy over the wall "
        "| ESM-2 loop tokens/s per job |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        record = json.loads(Path(path).read_text())
        for state, run in record["runs"].items():
            rates = [j["esm2"]["tokens_per_s"] for j in run["embedding_jobs"].values()]
            busy = ", ".join(f"{b:.2f}" for b in run["gpu_busy_over_wall"].values())
            lines.append(
                f"| {record['sample']} | {record['gpus']} | {state}, "
                f"{record.get('precision', 'fp16')} | {run['wall_s']} | "
                f"**{run['mfu']:.0%}** | {busy} | {', '.join(f'{r:,}' for r in rates)} |"
            )
    for gpus, mfu in PEER["mfu"].items():
        lines.append(f"| {PEER['system']} | {gpus} | - | - | {mfu:.0%} | - | - |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=Path, help="FASTA files of real DNA to cut samples from")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--sample", choices=list(SAMPLES), default="reads")
    parser.add_argument("--n", type=int, help="reads or contigs (default: the sample's)")
    parser.add_argument("--runs", nargs="*", choices=("cold", "warm"), default=["cold", "warm"])
    parser.add_argument("--precision", choices=("fp16", "fp8"), default="fp16")
    parser.add_argument(
        "--engine-tokens", type=int, default=3_000_000, help="0: no engine check after the runs"
    )
    parser.add_argument(
        "--prime", type=int, help="first fill the caches with this many reads or contigs"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summarize", nargs="+", type=Path, help="result files to tabulate")
    parser.add_argument("--engine-check", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    if args.engine_check:
        engine_check_child(args.engine_check, args.sample, args.engine_tokens)
        return
    import torch
    from record import save

    args.workdir.mkdir(parents=True, exist_ok=True)
    run = prepare(args, args.sample)
    rates = {i: round(bf16_matmul_tflops(f"cuda:{n}"), 1) for n, i in enumerate(gpu_indices())}
    print(f"bf16 matmul TFLOP/s per GPU: {rates}", flush=True)
    torch.cuda.empty_cache()
    device = f"{len(rates)} x {torch.cuda.get_device_name()}"
    runs, record = {}, {"torch": torch.__version__, "sample": args.sample, "gpus": len(rates)}
    record["precision"] = args.precision
    record.update(bf16_matmul_tflops=rates, runs=runs, peer=PEER)
    if args.prime:
        prime(args, run, args.sample)
    for state in args.runs:
        record["sample_size"], runs[state] = measure(
            run, args.sample, state, rates, record.get("sample_size")
        )
        save("end_to_end", device, args.out, **record)  # each run kept as soon as it is done
    if not args.runs or not args.engine_tokens:
        return
    check = engine_check(args, run, args.sample, args.engine_tokens)
    job = runs[args.runs[-1]]["embedding_jobs"]["shard_0000"]["esm2"]
    check["in_job_over_engine"] = round(job["tokens_per_s"] / check["tokens_per_s"], 3)
    save("end_to_end", device, args.out, **record, engine_check=check)


if __name__ == "__main__":
    main()
