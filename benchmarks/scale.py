"""Samples of millions of reads through the README's command, stage by stage (issue 19).

`snakemake --profile profiles/local` in a run directory on reads of 150 bp cut from real
sequence (samples.py, as end_to_end.py), random full-size models in the published formats,
empty compile cache, one scenario at a time on the GPUs the machine shows.

    python benchmarks/scale.py --scenarios reads-1m-dnabert --workdir /tmp/scale --out DIR
    python benchmarks/scale.py --summarize DIR/scale-*.json     # markdown, with the projection
    python benchmarks/scale.py --project DIR/scale-*.json       # the projection alone
    python benchmarks/scale.py --tiny --workdir /tmp/bench-scale --out /tmp/bench-scale/out
    python benchmarks/scale.py --prepare-only --scenarios reads-10m-dnabert --workdir /tmp/scale

Scenarios (SCENARIOS): 1 and 10 million reads at chunk 150 with a classifier of DNABERT-S
features alone (random, in our .safetensors format, its header saying 150 bp chunks), and
300,000 reads at chunk 300 with both models and the published-format 3328-feature classifier, in
fp16 and in FP8 (the gate's bar lowered for random weights, as end_to_end.py does).

Per scenario, one JSON file (`DIR/scale-<scenario>.json`, record.save: command and device):
the wall; every job's wall, CPU seconds and peak RSS from Snakemake's benchmark files, each
rule's stage, and each job process's peak PSS and RSS and CPU seconds sampled every 0.5 s; the
critical path (workflow_run.critical_path); each embedding job's fixed start and loops; GPU
busy over the wall; the bf16 matrix rate measured before the run and the end-to-end MFU
against it (model FLOPs of every embedded frame, model_flops.frame_table_flops); the disk
results/ held at the end and the most the run filled. The samples and models stay in
--workdir for the next scenario; a scenario's results/ is deleted once measured.

--tiny: the demo's tiny models on the CPU and each scenario's reads / 1000, with the precision
left to `auto` (FP8 needs a GPU), to test all of this end to end in a minute or two.
"""

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import projection
from model_flops import bf16_matmul_tflops, frame_table_flops
from record import save
from samplers import gpu_indices
from samples import read_genomes, reads, write_fasta
from workflow_run import (
    REPO,
    critical_path,
    embedding_jobs,
    frame_table,
    is_embedding,
    job_table,
    results_gb,
    run_workflow,
    stages,
    write_run_config,
)

from virnucpro.io.classifier_header import CHUNK_SIZE_KEY, EMBEDDING_MODELS

READ_LENGTH = 150
TINY_SHARE = 1000  # --tiny runs a scenario's reads / this
FRAMES_PER_READ = 1.75  # kept frames of a 150 bp read (1.73 measured), for the disk estimate
# what a read costs on disk beside its vectors: its FASTA (165 bytes), about 900 bytes of
# results and 700 of temporary files while the run goes (--tiny)
BYTES_PER_READ = 1_800


@dataclass(frozen=True)
class Scenario:
    reads: int
    chunk_size: int
    models: tuple  # the embedding models of its classifier
    precision: str  # embedding.precision


SCENARIOS = {  # in the order they run by default: the one that needs the most disk last
    "reads-1m-dnabert": Scenario(1_000_000, 150, ("dnabert_s",), "auto"),
    "reads-300k-fp16": Scenario(300_000, 300, EMBEDDING_MODELS, "fp16"),
    "reads-300k-fp8": Scenario(300_000, 300, EMBEDDING_MODELS, "fp8"),
    "reads-10m-dnabert": Scenario(10_000_000, 150, ("dnabert_s",), "auto"),
}


@dataclass
class Models:
    paths: dict  # the config's `models`: esm2, dnabert_s, classifier_300, classifier_500
    dnabert_s_classifier: Path  # of DNABERT-S features alone, for 150 bp chunks
    configs: dict  # {kind: the model's config}, for its FLOPs


def full_models(directory, kinds):
    """The full-size models, those of `kinds` (and their classifiers) written once."""
    from full_models import full_models as published

    from virnucpro.models.architectures import ESM2_PRESETS, DNABertConfig

    written = [*kinds, "classifier_300"] if "esm2" in kinds else kinds
    configs = {"esm2": ESM2_PRESETS["esm2_t36_3B_UR50D"], "dnabert_s": DNABertConfig()}
    return _with_dnabert_s_classifier(published(directory, written), configs, directory)


def tiny_models(directory):
    """The demo's models (virnucpro.demo), written once."""
    from virnucpro.demo import DNABERT_S_SHAPE, ESM2_SHAPE, build_demo_models
    from virnucpro.models.architectures import ESM2Config

    paths = {
        "esm2": directory / "esm2_t4_demo.pt",
        "dnabert_s": directory / "DNABERT-S-demo",
        "classifier_300": directory / "300_model.pth",
        "classifier_500": directory / "500_model.pth",
    }
    if not paths["classifier_500"].exists():  # written last
        classifiers = [paths["classifier_300"], paths["classifier_500"]]
        build_demo_models(paths["esm2"], paths["dnabert_s"], classifiers)
    configs = {"esm2": ESM2Config(**ESM2_SHAPE), "dnabert_s": DNABERT_S_SHAPE}
    return _with_dnabert_s_classifier(paths, configs, directory)


def _with_dnabert_s_classifier(paths, configs, directory):
    """Models with a random classifier of DNABERT-S features alone for 150 bp chunks, in our
    safetensors format (so the workflow accepts it for a sample of chunk 150)."""
    import torch

    from virnucpro.models.classifier import MLPClassifier, save_classifier

    path = Path(directory) / "dnabert_s_150.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        model = MLPClassifier(configs["dnabert_s"].hidden_size).eval()
        metadata = {CHUNK_SIZE_KEY: str(READ_LENGTH)}
        save_classifier(model, path, models=("dnabert_s",), metadata=metadata)
    return Models(paths, path, configs)


def sample_fasta(args, n):
    """The FASTA of n reads in the workdir, cut once (seed 0) and kept for later scenarios;
    (path, seconds it took to write here, or None if it was there)."""
    path = args.workdir / "samples" / f"reads-{n}.fa"
    if path.exists():
        return path, None
    started = time.perf_counter()
    write_fasta(reads(read_genomes(args.genomes), n, READ_LENGTH, seed=0), path)
    return path, round(time.perf_counter() - started, 1)


def vector_width(configs, kinds):
    """The features of the models of `kinds`: one vector of this many floats a frame."""
    widths = {"dnabert_s": configs["dnabert_s"].hidden_size, "esm2": configs["esm2"].embed_dim}
    return sum(widths[kind] for kind in kinds)


def check_disk(workdir, name, n, width, value_bytes):
    """Stop before a scenario whose sample and results the disk cannot hold: its embeddings
    (vectors of `value_bytes` a value: float16 where a GPU job computes in fp16 or FP8,
    float32 on the CPU, as virnucpro.stages.embed stores them) and what else a read leaves on
    disk."""
    needed = n * (FRAMES_PER_READ * width * value_bytes + BYTES_PER_READ)
    free = shutil.disk_usage(workdir).free
    if needed > free:
        raise SystemExit(
            f"{name}: {n:,} reads need about {needed / 1e9:.0f} GB ({FRAMES_PER_READ} frames a "
            f"read, {width} features of {value_bytes} bytes each, {BYTES_PER_READ} bytes a read "
            "beside), "
            f"{free / 1e9:.0f} GB are free under {workdir}: free some (the ESM-2 checkpoint in "
            "--workdir is 5.6 GB), give a --workdir on a larger disk, or pass --no-disk-check"
        )


def bf16_rates(tiny):
    """{device: bf16 matrix TFLOP/s} of each GPU (tiny: of the CPU, on a small product)."""
    import torch

    if tiny:
        return {"cpu": round(bf16_matmul_tflops("cpu", size=512, repeats=3), 3)}
    rates = {i: round(bf16_matmul_tflops(f"cuda:{n}"), 1) for n, i in enumerate(gpu_indices())}
    torch.cuda.empty_cache()  # the GPU memory the embedding jobs size their batches by
    return rates


def device_name(tiny):
    import torch

    cores = f"{os.cpu_count()} CPU cores"
    if tiny:
        return f"CPU only (--tiny), {cores}"
    return f"{len(gpu_indices())} x {torch.cuda.get_device_name()}, {cores}"


def reads_of(args, name):
    return SCENARIOS[name].reads // TINY_SHARE if args.tiny else SCENARIOS[name].reads


def measure(args, name, models):
    """Run one scenario cold and describe it; saved before and after its FLOPs are counted."""
    scenario, n = SCENARIOS[name], reads_of(args, name)
    if not args.no_disk_check:
        width = vector_width(models.configs, scenario.models)
        check_disk(args.workdir, name, n, width, 4 if args.tiny else 2)
    fasta, written_s = sample_fasta(args, n)
    run = args.workdir / f"run-{name}"
    row = {"sample": name, "fasta": fasta, "chunk_size": scenario.chunk_size, "chunking": "overlap"}
    if scenario.models != EMBEDDING_MODELS:
        row["classifier"] = models.dnabert_s_classifier
    precision = "auto" if args.tiny else scenario.precision
    write_run_config(run, [row], models.paths, precision)
    rates = bf16_rates(args.tiny)
    print(f"{name}: {n:,} reads, bf16 matrix TFLOP/s {rates}", flush=True)
    done = run_workflow(run, cold=True)
    print(f"{name}: {done.wall_s:.1f} s", flush=True)
    out = args.out / f"scale-{name}.json"
    try:
        jobs = job_table(run, done.started)
        result = {
            "scenario": name,
            "reads": n,
            "chunk_size": scenario.chunk_size,
            "models": list(scenario.models),
            "precision": precision,
            "wall_s": round(done.wall_s, 1),
            "gpu_busy_over_wall": done.gpu_busy,
            "bf16_matmul_tflops": rates,
            "critical_path": critical_path(jobs, run, done),
            "stages": stages(jobs),
            "jobs": jobs,
            "job_processes": done.job_processes,
            "embedding_jobs": embedding_jobs(run, name, jobs),
            "disk_gb": {"results": results_gb(run), "most_used": done.disk_used_gb},
            "sample": {"bytes": fasta.stat().st_size, "written_s": written_s},
        }
        device = device_name(args.tiny)
        save("scale", device, out, **result)  # kept should the count below fail
        configs = {kind: models.configs[kind] for kind in scenario.models}
        flops = frame_table_flops(frame_table(run, name), configs, models.paths["dnabert_s"])
    finally:
        shutil.rmtree(run / "results", ignore_errors=True)
    devices = max(len(done.gpu_busy), 1)  # the CPU for --tiny
    rate = float(np.mean(list(rates.values())))
    mfu = flops["model_tflop"] / (done.wall_s * devices * rate)
    return save("scale", device, out, **result, flops=flops, mfu=round(mfu, 4))


MEMORY_BAR_GB = 8  # issue 19: every job's peak memory under this


def summarize(records):
    """Markdown: a row per scenario, each scenario's jobs by rule and script, the projection."""
    out = [
        "| scenario | reads | precision | wall s | reads/s | GPU busy | MFU | planning s "
        "| prepare s | GPU jobs' span s | to samples.tsv s | after it s | exit s "
        "| largest job GB (PSS / RSS / Snakemake's RSS) | results GB | most disk used GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        path, busy = r["critical_path"], r["gpu_busy_over_wall"]
        out.append(
            f"| {r['scenario']} | {r['reads']:,} | {r['precision']} | {r['wall_s']} | "
            f"{r['reads'] / r['wall_s']:,.0f} | "
            f"{', '.join(f'{b:.2f}' for b in busy.values()) or '-'} | "
            f"{r['mfu']:.1%} | {path['planning_s']} | {path['prepare_s']} | "
            f"{path['gpu_span_s']} | {path['tail_s']} | {path['after_table_s']} | "
            f"{path['exit_s']} | {_largest_job_gb(r)} | "
            f"{r['disk_gb']['results']} | {r['disk_gb']['most_used']} |"
        )
    for r in records:
        out += ["", *_scenario_detail(r)]
    return "\n".join([*out, "", "## Projection", "", projection.table(records)])


def _largest_job_gb(record):
    """The largest job's peak memory (GB): PSS and RSS sampled here, RSS as Snakemake saw it."""
    pss, rss = (
        max(p[key] for p in record["job_processes"]) / 1024
        for key in ("peak_pss_mb", "peak_rss_mb")
    )
    snakemake = max(j["max_rss_mb"] or 0 for js in record["jobs"].values() for j in js) / 1024
    flag = "" if pss < MEMORY_BAR_GB else f" (over {MEMORY_BAR_GB} GB)"
    return f"{pss:.2f} / {rss:.2f} / {snakemake:.2f}{flag}"


def _scenario_detail(r):
    """A scenario's command, jobs by rule, job processes by script and by stage, and rates."""
    out = [f"### {r['scenario']}", "", f"`{r['command']}` on {r['device']}, {r['date']}", ""]
    out += ["| rule | stage | jobs | wall s, sum | longest s | CPU s, sum | max RSS MB |"]
    out += ["|---|---|---|---|---|---|---|"]
    for rule, jobs in r["jobs"].items():
        cpu = sum(j["cpu_s"] or 0 for j in jobs)
        rss = max(j["max_rss_mb"] or 0 for j in jobs)
        out.append(
            f"| {rule} | {r['stages'][rule]} | {len(jobs)} | "
            f"{sum(j['wall_s'] for j in jobs):.1f} | {max(j['wall_s'] for j in jobs):.1f} | "
            f"{cpu:.1f} | {rss:,.0f} |"
        )
    path = r["critical_path"]
    stage = _process_stage(r)
    out += _process_table("job process, by its script", r["job_processes"], lambda p: p["script"])
    out += _process_table("job process, by its stage", r["job_processes"], stage)
    prepare_cpu = sum(p["cpu_s"] for p in r["job_processes"] if stage(p) == "prepare")
    rates = projection.gpu_rates([r])
    per_s = ", ".join(f"{kind} {rate:,.0f}" for kind, rate in rates["frames_per_s"].items())
    return out + [
        "",
        f"- prepare: {r['reads'] / path['prepare_s']:,.0f} reads/s, "
        f"{prepare_cpu / path['prepare_s']:.1f} cores busy on average",
        f"- embedding: {len(r['embedding_jobs'])} jobs, frames/s per GPU in the loops {per_s}; "
        f"a job's fixed start (wall less loops) {rates['fixed_s']:.1f} s on average",
        f"- {r['flops']['frames']:,} frames, {r['flops']['model_tflop']:,} TFLOP of model work; "
        f"bf16 matrix rate {r['bf16_matmul_tflops']} TFLOP/s",
    ]


def _process_stage(r):
    """The stage of a job process: embedding by its script, the others by whether they began
    before the first embedding job (as workflow_run.stages cuts the rules)."""
    first = r["critical_path"]["to_first_embedding_s"]

    def stage(process):
        if is_embedding(process["script"]):
            return "embedding"
        return "prepare" if process["start_s"] < first else "results"

    return stage


def _process_table(title, processes, key):
    """Markdown rows of the job processes grouped by `key`: count, peak RSS, CPU seconds."""
    out = ["", f"| {title} (sampled every 0.5 s) | processes | peak PSS MB | peak RSS MB "]
    out[-1] += "| CPU s, sum |"
    out += ["|---|---|---|---|---|"]
    for group in sorted({key(p) for p in processes}):
        mine = [p for p in processes if key(p) == group]
        out.append(
            f"| {group} | {len(mine)} | {max(p['peak_pss_mb'] for p in mine):,} | "
            f"{max(p['peak_rss_mb'] for p in mine):,} | {sum(p['cpu_s'] for p in mine):.1f} |"
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=[*SCENARIOS])
    parser.add_argument("--workdir", type=Path, help="models, samples and run directories")
    parser.add_argument(
        "--genomes", type=Path, default=REPO / "tests" / "data" / "dvf", help="FASTA of real DNA"
    )
    parser.add_argument("--out", type=Path, help="directory of the result files")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU, reads/1000")
    parser.add_argument("--no-disk-check", action="store_true")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="write the scenarios' models and samples, run nothing (a call of its own where a "
        "run alone nears a device call's time limit)",
    )
    parser.add_argument("--summarize", nargs="+", type=Path, help="result files: markdown")
    parser.add_argument("--project", nargs="+", type=Path, help="result files: the projection")
    args = parser.parse_args()
    if args.summarize or args.project:
        records = [json.loads(path.read_text()) for path in args.summarize or args.project]
        print(summarize(records) if args.summarize else projection.table(records))
        return
    if not (args.workdir and (args.out or args.prepare_only)):
        parser.error("a run needs --workdir and --out")
    args.workdir.mkdir(parents=True, exist_ok=True)
    kinds = {kind for name in args.scenarios for kind in SCENARIOS[name].models}
    models = (
        tiny_models(args.workdir / "models-tiny")
        if args.tiny
        else full_models(args.workdir / "models", [k for k in EMBEDDING_MODELS if k in kinds])
    )
    for name in args.scenarios:
        if args.prepare_only:
            sample_fasta(args, reads_of(args, name))
        else:
            measure(args, name, models)


if __name__ == "__main__":
    main()
