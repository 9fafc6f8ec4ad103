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
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml
from model_flops import bf16_matmul_tflops, dnabert_flops, esm2_flops
from samples import contigs, read_genomes, reads, write_fasta

REPO = Path(__file__).resolve().parents[1]
SAMPLES = {
    "reads": {"chunk_size": 300, "make": lambda g, n: reads(g, n, 150, seed=0), "n": 300_000},
    "contigs": {
        "chunk_size": 500,
        "make": lambda g, n: contigs(g, n, 1000, 20000, seed=0),
        "n": 3_000,
    },
}
LEASE = re.compile(r"lease on GPU (\S+) taken \(waited ([\d.]+) s\)")
PROCESS_START = re.compile(r"([\d.]+) s into the process")
STEP = re.compile(r"virnucpro.embed: (.+): ([\d.]+) s into the job")
# broadinstitute/virnucpro-broad, computed from its own report (reports/150bp_benchmark_report.md):
# 16.5k ESM-2 tokens/s on an RTX 4090 (165 TFLOP/s fp16 tensor rate), 81% of the wall in ESM-2.
PEER = {
    "system": "broadinstitute/virnucpro-broad (their report, their 150 bp sample, RTX 4090)",
    "mfu": {"1 GPU": 0.44, "2 GPUs": 0.35},
}


class GpuSampler:
    """Each GPU's utilisation as the driver reports it (the share of time a kernel ran), every
    `interval` seconds, in a thread; `busy()` is the mean per GPU."""

    def __init__(self, indices, interval=0.05):
        import pynvml  # nvidia-ml-py, on every GPU machine this benchmark runs on

        self.nvml, self.interval = pynvml, interval
        pynvml.nvmlInit()
        self.handles = {i: pynvml.nvmlDeviceGetHandleByIndex(int(i)) for i in indices}
        self.samples = defaultdict(list)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self.stop.is_set():
            for index, handle in self.handles.items():
                self.samples[index].append(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()

    def busy(self):
        return {i: round(float(np.mean(s)) / 100, 3) for i, s in self.samples.items()}


def gpu_indices():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def prepare(args, sample):
    """Models, the sample FASTA and the run directory's config; what exists is kept."""
    from full_models import full_models

    from virnucpro.fidelity import GateSettings

    models = full_models(args.workdir / "models")
    spec = SAMPLES[sample]
    fasta = args.workdir / f"{sample}.fa"
    if not fasta.exists():
        write_fasta(spec["make"](read_genomes(args.genomes), args.n or spec["n"]), fasta)
    run = args.workdir / f"run-{sample}"
    (run / "config").mkdir(parents=True, exist_ok=True)
    (run / "config" / "samples.tsv").write_text(
        f"sample\tfasta\tchunk_size\tchunking\n{sample}\t{fasta}\t{spec['chunk_size']}\toverlap\n"
    )
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"] = {k: str(v) for k, v in models.items()}
    config["embedding"]["precision"] = args.precision
    if args.precision == "fp8":
        # random weights are 0.9975 at the 1st percentile of FP8's cosine against fp16, and
        # the default bar (0.999) stops them, as it should: this measures the speed
        config["embedding"]["fp8_gate"] = asdict(GateSettings(min_cosine_p1=0.99))
    (run / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def run_workflow(run, cold, *targets, fresh=True):
    """The README's command in `run` (for `targets`, or `all`), from nothing unless not `fresh`
    (then resuming what is there); returns (wall seconds, GPU busy per GPU)."""
    for stale in ("results", "logs", ".snakemake") if fresh else ():
        shutil.rmtree(run / stale, ignore_errors=True)
    if cold:
        shutil.rmtree(run / "resources", ignore_errors=True)
    command = [sys.executable, "-m", "snakemake", *targets]
    command += ["--snakefile", str(REPO / "workflow/Snakefile")]
    command += ["--directory", str(run), "--profile", str(REPO / "profiles/local")]
    with GpuSampler(gpu_indices()) as sampler:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
    (run / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"the workflow failed:\n{(done.stdout + done.stderr)[-6000:]}")
    return wall, sampler.busy()


def job_times(run):
    """{rule: [(wildcards, seconds)]} from the Snakemake benchmark files."""
    times, root = defaultdict(list), run / "logs" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        first, *rest = path.relative_to(root).parts
        rule = first.removesuffix(".tsv")  # a file of its own: a rule of no wildcards
        with open(path) as handle:
            seconds = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
        times[rule].append(("/".join(rest) or ".", round(seconds, 2)))
    return times


def embedding_jobs(run, sample):
    """Per embedding job: its GPU, lease wait, and per model load, first batch and loop."""
    from virnucpro.fidelity import GateReport
    from virnucpro.h5store import read_attrs

    jobs = {}
    for log in sorted((run / "logs" / "embed_shard" / sample).glob("*.log")):
        lease = LEASE.search(log.read_text())
        job = {"gpu": lease.group(1), "lease_wait_s": float(lease.group(2))} if lease else {}
        text = log.read_text()
        started = PROCESS_START.search(text)
        job["process_start_s"] = float(started.group(1)) if started else None
        job["steps_s"] = {event: float(s) for event, s in STEP.findall(text)}
        for kind in ("dnabert_s", "esm2"):
            attrs = read_attrs(run / "results" / sample / "embeddings" / f"{log.stem}.{kind}.h5")
            job[kind] = {
                "load_s": round(float(attrs["load_seconds"]), 2),
                "warm_up_s": round(float(attrs["warm_up_seconds"]), 2),
                "begun_s": round(float(attrs["begun_seconds"]), 2),
                "first_batch_s": round(float(attrs["first_batch_seconds"]), 2),
                "loop_s": round(float(attrs["embed_seconds"]), 2),
                "tokens": int(attrs["tokens"]),
                "tokens_per_s": round(float(attrs["tokens_per_second"])),
                "gpu_busy_in_loop": round(float(attrs["gpu_busy"]), 4),
                "rows_per_batch": int(attrs["rows_per_batch"]),
            }
            gate = GateReport.from_attributes(attrs)
            if gate is not None:
                job[kind]["fp8_gate"] = gate.attributes()
        jobs[log.stem] = job
    return jobs


def sample_flops(run, sample):
    """Frames, tokens and model FLOPs of every frame the workflow embedded."""
    from virnucpro.encoders import NucleotideEncoder
    from virnucpro.models.architectures import ESM2_PRESETS
    from virnucpro.models.dnabert_s import DNABertConfig
    from virnucpro.sharding import esm2_tokens, read_shard
    from virnucpro.tables import read_tsv

    shards = run / "results" / sample / "shards"
    proteins, nucleotides = [], []
    for row in read_tsv(shards / "manifest.tsv"):
        _, _, dna, protein = read_shard(shards / "frames.tsv", shards / "manifest.tsv", row.shard)
        proteins += protein
        nucleotides += dna
    config = yaml.safe_load((run / "config" / "config.yaml").read_text())
    dna_lengths = [
        len(t) for t in NucleotideEncoder.tokenize(config["models"]["dnabert_s"], nucleotides)
    ]
    protein_lengths = esm2_tokens(np.array([len(p) for p in proteins]))
    esm2, dnabert = (
        esm2_flops(ESM2_PRESETS["esm2_t36_3B_UR50D"], protein_lengths),
        dnabert_flops(DNABertConfig(), dna_lengths),
    )
    return {
        "frames": len(proteins),
        "esm2_tokens": int(protein_lengths.sum()),
        "dnabert_s_tokens": int(sum(dna_lengths)),
        "esm2_tflop": round(esm2 / 1e12, 1),
        "dnabert_s_tflop": round(dnabert / 1e12, 1),
        "model_tflop": round((esm2 + dnabert) / 1e12, 1),
    }


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

    from virnucpro.embed import longest_first
    from virnucpro.encoders import ProteinEncoder
    from virnucpro.engine import auto_batch_tokens, consecutive_ranges, embed_all
    from virnucpro.sharding import read_shard

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
        wall, _ = run_workflow(run, cold=True)
    finally:
        sheet.write_text(full)
    print(f"primed with {args.prime} {sample} in {wall:.1f} s", flush=True)


def measure(run, sample, state, rates, flops=None):
    wall, busy = run_workflow(run, cold=state == "cold")
    flops = flops or sample_flops(run, sample)
    gpus = len(busy)
    rate = float(np.mean(list(rates.values())))
    result = {
        "wall_s": round(wall, 1),
        "mfu": round(flops["model_tflop"] / (wall * gpus * rate), 3),
        "gpu_busy_over_wall": busy,
        "embedding_jobs": embedding_jobs(run, sample),
        "job_seconds": job_times(run),
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
