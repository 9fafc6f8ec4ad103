"""A user's run of the workflow, the README's way (`snakemake --profile profiles/local` in a run
directory), and what the benchmarks read from it afterwards: every job's time and memory from
Snakemake's benchmark files, the run's critical path, and the embedding jobs' own figures.

Nothing here names a rule but `is_embedding`, and nothing reads a job's log but
`embedding_log_marks`, so that the rules and their logs can change under the benchmarks.
"""

import csv
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from samplers import GpuSampler, JobProcesses, gpu_indices

REPO = Path(__file__).resolve().parents[1]
# the table of all samples: the last output of every run (workflow/rules/report.smk)
SAMPLES_TABLE = Path("results") / "samples.tsv"


def frame_table(run, sample):
    """The table of a sample's frames, every frame the embedding jobs embed (io.shards)."""
    return run / "results" / sample / "shards" / "frames.tsv"


def write_run_config(run, rows, models, precision):
    """A run directory's config/samples.tsv of `rows` (one {column: value} per sample) and its
    config/config.yaml: the repository's, with `models` ({key: path}) and the precision."""
    from virnucpro.calls.fidelity import GateSettings

    (run / "config").mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
    (run / "config" / "samples.tsv").write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"] = {k: str(v) for k, v in models.items()}
    config["embedding"]["precision"] = precision
    if precision == "fp8":
        # random weights are 0.9975 at the 1st percentile of FP8's cosine against fp16, and
        # the default bar (0.999) stops them, as it should: this measures the speed
        config["embedding"]["fp8_gate"] = asdict(GateSettings(min_cosine_p1=0.99))
    (run / "config" / "config.yaml").write_text(yaml.safe_dump(config))


@dataclass
class WorkflowRun:
    wall_s: float
    started: float  # when the command started (seconds since the epoch), for file times
    gpu_busy: dict  # GPU index: mean busy share over the wall
    job_processes: list  # JobProcesses.table()
    disk_used_gb: float  # the most the run's disk filled beyond where it started


def run_workflow(run, cold, *targets, fresh=True):
    """The README's command in `run` (for `targets`, or `all`), from nothing unless not `fresh`
    (then resuming what is there); its output in run/snakemake.log. `cold`: without the
    compile cache in resources/, as on a new installation."""
    for stale in ("results", "logs", ".snakemake") if fresh else ():
        shutil.rmtree(run / stale, ignore_errors=True)
    if cold:
        shutil.rmtree(run / "resources", ignore_errors=True)
    command = [sys.executable, "-m", "snakemake", *targets]
    command += ["--snakefile", str(REPO / "workflow/Snakefile")]
    command += ["--directory", str(run), "--profile", str(REPO / "profiles/local")]
    free = shutil.disk_usage(run).free
    with open(run / "snakemake.log", "w") as log, GpuSampler(gpu_indices()) as gpus:
        started = time.time()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        with JobProcesses(process.pid, run, started) as jobs:
            returncode = process.wait()
        wall = time.time() - started
    if returncode != 0:
        tail = (run / "snakemake.log").read_text()[-6000:]
        raise RuntimeError(f"the workflow failed (run/snakemake.log):\n{tail}")
    used = round((free - jobs.least_free) / 1e9, 2)
    return WorkflowRun(wall, started, gpus.busy(), jobs.table(), used)


def is_embedding(rule):
    """Whether the jobs of a rule (or of a script of that name) embed on a GPU (embed_shard,
    embed_shard_one_model)."""
    return rule.startswith("embed")


def job_table(run, started):
    """{rule: [job]} of every job with a benchmark file in logs/benchmarks/ (by the folder of
    its file, the rule's name unless the rule shares another's folder): its wildcards
    ("." for a rule of none), wall, CPU seconds and peak RSS (MB) as Snakemake sampled them, and
    its start and end in seconds from the workflow's start (the end: when Snakemake wrote the
    file, as the job ended)."""
    jobs, root = defaultdict(list), run / "logs" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        first, *rest = path.relative_to(root).parts
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        wall, end = float(row["s"]), path.stat().st_mtime - started
        jobs[first.removesuffix(".tsv")].append(
            {
                "job": "/".join(rest).removesuffix(".tsv") or ".",
                "wall_s": round(wall, 2),
                "cpu_s": _number(row["cpu_time"]),
                "max_rss_mb": _number(row["max_rss"]),
                "start_s": round(end - wall, 2),
                "end_s": round(end, 2),
            }
        )
    return dict(jobs)


def _number(text):
    return None if text == "NA" else round(float(text), 2)


def stages(jobs):
    """{rule: prepare, embedding or results}: a rule is `prepare` when its first job starts
    before the first embedding job does, `results` when after."""
    first = min(j["start_s"] for r, js in jobs.items() if is_embedding(r) for j in js)

    def stage(rule):
        if is_embedding(rule):
            return "embedding"
        return "prepare" if min(j["start_s"] for j in jobs[rule]) < first else "results"

    return {rule: stage(rule) for rule in jobs}


def critical_path(jobs, run, done):
    """The run's wall cut where the GPU work starts and ends (seconds): Snakemake's planning
    (to the first job's start), the stages before the first embedding job, the span of the
    embedding jobs, the tail from the last one's end to the table of all samples, the jobs
    still running after that table (plots, viral FASTA) and Snakemake's exit."""
    embedding = [j for rule, js in jobs.items() if is_embedding(rule) for j in js]
    everything = [j for js in jobs.values() for j in js]
    first_job, last_job = min(j["start_s"] for j in everything), max(j["end_s"] for j in everything)
    first, last = min(j["start_s"] for j in embedding), max(j["end_s"] for j in embedding)
    table = (run / SAMPLES_TABLE).stat().st_mtime - done.started
    pieces = {
        "planning_s": first_job,
        "prepare_s": first - first_job,
        "to_first_embedding_s": first,
        "gpu_span_s": last - first,
        "tail_s": table - last,
        "after_table_s": last_job - table,
        "exit_s": done.wall_s - last_job,
    }
    return {name: round(seconds, 2) for name, seconds in pieces.items()}


def embedding_jobs(run, sample, jobs):
    """Per embedding job of `sample`: its wall and fixed cost (the wall less its models'
    loops), the marks of its log, and per model (its embedding files' attributes) frames, load,
    first batch and loop, with tokens/s."""
    from virnucpro.calls.fidelity import GateReport
    from virnucpro.io.h5store import read_attrs

    found, embeddings = {}, run / "results" / sample / "embeddings"
    for rule, rule_jobs in jobs.items():
        for job in rule_jobs if is_embedding(rule) else ():
            if not job["job"].startswith(f"{sample}/"):
                continue
            stem = job["job"].removeprefix(f"{sample}/")  # shard_0000 or shard_0000.esm2
            log = run / "logs" / rule / f"{job['job']}.log"  # as logs/benchmarks/ names it
            entry = embedding_log_marks(log.read_text()) if log.exists() else {}
            loops = 0.0
            for path in sorted(embeddings.glob(f"{stem}.*h5")):
                kind = path.name.split(".")[-2]  # {shard}.{kind}.h5
                attrs = read_attrs(path)
                entry[kind] = {
                    "frames": int(attrs["rows"]),
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
                    entry[kind]["fp8_gate"] = gate.attributes()
                loops += entry[kind]["loop_s"]
            entry.update(wall_s=job["wall_s"], fixed_s=round(job["wall_s"] - loops, 2))
            found[stem] = entry
    return found


LEASE = re.compile(r"lease on GPU (\S+) taken \(waited ([\d.]+) s\)")
PROCESS_START = re.compile(r"([\d.]+) s into the process")
STEP = re.compile(r"virnucpro.stages.embed: (.+): ([\d.]+) s into the job")


def embedding_log_marks(text):
    """What an embedding job's log says of its start: its GPU and wait for the lease, when its
    code began (seconds into the process) and when each step of its start ended (seconds into
    the job)."""
    lease, started = LEASE.search(text), PROCESS_START.search(text)
    marks = {"gpu": lease.group(1), "lease_wait_s": float(lease.group(2))} if lease else {}
    marks["process_start_s"] = float(started.group(1)) if started else None
    marks["steps_s"] = {event: float(s) for event, s in STEP.findall(text)}
    return marks


def results_gb(run):
    """Disk held by the run's results/ at its end."""
    files = (run / "results").rglob("*")
    return round(sum(p.stat().st_size for p in files if p.is_file()) / 1e9, 3)
