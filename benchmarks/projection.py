"""A 50-million-read sample on 1, 8 and 64 GPUs under SLURM, projected from the stages that
scale.py measured on one machine, in four terms (seconds):

- fixed: Snakemake's planning and exit, the mean of the runs;
- prepare (the stages before the first embedding job) and results (from the last embedding
  job's end to the last job's): each a line in the reads, fixed + per read, fitted through the
  runs of every scenario (they cut, translate and tabulate the same 150 bp reads); through the
  origin where the runs have one size or the fit a negative fixed part;
- the GPU stage: shards (NOTES), each job its fixed start (the measured jobs' mean wall less
  their loops) plus its frames at each model's measured frames/s per GPU, in waves of one job
  per GPU.
"""

import math

import numpy as np

READS = 50_000_000
GPU_COUNTS = (1, 8, 64)
# projected configurations: the scenarios whose embedding jobs give their GPU figures
CONFIGURATIONS = {
    "DNABERT-S only": ("reads-1m-dnabert", "reads-10m-dnabert"),
    "both models, fp8": ("reads-300k-fp8",),
}
NOTES = (
    "SLURM's queue wait and each job's dispatch are left out: every job has its node or GPU, "
    "of the kinds measured, the moment it is ready.",
    "The CPU stages run as in the measured runs, on one node of the measured machine's cores "
    "(a 16-32-core node); more GPUs do not make them faster.",
    "Shards: the largest measured run's shards per read scaled to the sample, rounded up to a "
    "multiple of 8 as the workflow rounds counts above 8.",
    "The compile cache is taken as shared by the jobs (a shared filesystem), as in the runs.",
    "The stages follow one another, as in the measured runs: no preparing of one part beside "
    "the embedding of another.",
)


def line(results, stage):
    """(fixed seconds, seconds per read) of `prepare` or `results` through the results."""
    paths = [r["critical_path"] for r in results]
    if stage == "prepare":
        seconds = np.array([p["prepare_s"] for p in paths])
    else:
        seconds = np.array([p["tail_s"] + p["after_table_s"] for p in paths])
    reads = np.array([r["reads"] for r in results], dtype=np.float64)
    if len(set(reads)) > 1:
        slope, fixed = np.polyfit(reads, seconds, 1)
        if fixed >= 0:
            return float(fixed), float(slope)
    return 0.0, float((reads * seconds).sum() / (reads**2).sum())


def gpu_rates(results):
    """Frames per read, shards per read, a job's mean fixed start and {model: frames/s per GPU}
    of the embedding jobs of `results`."""
    jobs = [job for r in results for job in r["embedding_jobs"].values()]
    models = [kind for kind in ("dnabert_s", "esm2") if kind in jobs[0]]
    largest = max(results, key=lambda r: r["reads"])
    return {
        "frames_per_read": sum(job[models[0]]["frames"] for job in jobs)
        / sum(r["reads"] for r in results),
        "shards_per_read": len(largest["embedding_jobs"]) / largest["reads"],
        "fixed_s": float(np.mean([job["fixed_s"] for job in jobs])),
        "frames_per_s": {
            kind: sum(job[kind]["frames"] for job in jobs)
            / sum(job[kind]["loop_s"] for job in jobs)
            for kind in models
        },
    }


def shards(count):
    return count if count <= 8 else math.ceil(count / 8) * 8


def project(results):
    """Rows {configuration, gpus, shards, job_s, fixed_s, prepare_s, gpu_s, results_s,
    total_s} for each configuration with results, on each of GPU_COUNTS; and the two lines."""
    fixed = sum(
        float(np.mean([r["critical_path"][piece] for r in results]))
        for piece in ("planning_s", "exit_s")
    )
    lines = {stage: line(results, stage) for stage in ("prepare", "results")}
    prepare, after = (a + b * READS for a, b in lines.values())
    rows = []
    for name, scenarios in CONFIGURATIONS.items():
        measured = [r for r in results if r["scenario"] in scenarios]
        if not measured:
            continue
        rates = gpu_rates(measured)
        count = shards(math.ceil(rates["shards_per_read"] * READS))
        per_frame = sum(1 / rate for rate in rates["frames_per_s"].values())
        job = rates["fixed_s"] + rates["frames_per_read"] * READS / count * per_frame
        for gpus in GPU_COUNTS:
            gpu = math.ceil(count / gpus) * job
            rows.append(
                {
                    "configuration": name,
                    "gpus": gpus,
                    "shards": count,
                    "job_s": job,
                    "fixed_s": fixed,
                    "prepare_s": prepare,
                    "gpu_s": gpu,
                    "results_s": after,
                    "total_s": fixed + prepare + gpu + after,
                }
            )
    return rows, lines


def table(results):
    """The projection as markdown: the table, the lines and rates it is made of, the notes."""
    rows, lines = project(results)
    out = [
        f"One sample of {READS:,} reads of 150 bp under SLURM, projected (seconds):",
        "",
        "| configuration | GPUs | shards | one job | planning + exit | prepare | GPU stage "
        "| results | total | reads/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['configuration']} | {r['gpus']} | {r['shards']} | {r['job_s']:.0f} | "
            f"{r['fixed_s']:.0f} | {r['prepare_s']:.0f} | {r['gpu_s']:.0f} | "
            f"{r['results_s']:.0f} | **{r['total_s']:.0f}** | {READS / r['total_s']:,.0f} |"
        )
    out.append("")
    for stage, (fixed, per_read) in lines.items():
        out.append(f"- {stage}: {fixed:.1f} s + {per_read * 1e6:.2f} s per million reads")
    for name, scenarios in CONFIGURATIONS.items():
        measured = [r for r in results if r["scenario"] in scenarios]
        if measured:
            rates = gpu_rates(measured)
            per_s = ", ".join(f"{k} {v:,.0f}" for k, v in rates["frames_per_s"].items())
            out.append(
                f"- {name} (from {', '.join(r['scenario'] for r in measured)}): frames/s per "
                f"GPU {per_s}; {rates['frames_per_read']:.2f} frames a read; a job's fixed "
                f"start {rates['fixed_s']:.1f} s"
            )
    return "\n".join(out + [f"- {note}" for note in NOTES])
