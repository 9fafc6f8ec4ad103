"""End-to-end scaling over the GPUs of one machine: the whole workflow on a synthetic sample with
random full-size models, once on 1 GPU and once on each larger count asked for, with the same
CPU cores each time. Per run: wall time, the serial time before the first and after the last
embedding job held a GPU, each GPU's share of the wall time held by a job and spent computing,
and the scaling efficiency T1 / (K * TK).

    python benchmarks/scaling.py --dnabert-s DIR --workdir /tmp/scaling --frames 200000 \
        --shards 4 --gpus 1 2 4 --out benchmarks/results/<date>-<gpu>x4-scaling.json

Model conversion and kernel compilation happen once, before the timed runs, as they do once per
installation; every timed run starts from the sample FASTA (a fresh results/).
"""

import argparse
import datetime
import re
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from record import save
from stage_profile import job_times, prepare, workflow_command

from virnucpro.h5store import read_attrs

LEASE = re.compile(r"^(\S+ \S+) INFO \S+: lease on GPU (\S+) (taken|released)", re.M)


def run_workflow(workdir, gpus, cores):
    config = workdir / "config" / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["embedding"]["gpus"] = list(range(gpus))
    config.write_text(yaml.safe_dump(settings))
    command = workflow_command(workdir, "--cores", str(cores), "--quiet", "all")
    started = time.time()
    subprocess.run(command, check=True)
    return started, time.time()


def leases(workdir):
    """(GPU, taken, released) of every embedding job, from the lease lines of its log."""
    for log in (workdir / "logs").glob("embed_*/synthetic/*.log"):
        events = {event: (stamp, device) for stamp, device, event in LEASE.findall(log.read_text())}
        (taken, device), (released, _) = events["taken"], events["released"]
        yield device, log, _seconds(taken), _seconds(released)


def _seconds(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def measure(workdir, started, ended):
    """Wall time, the time before the first and after the last embedding job held a GPU, and
    per GPU its jobs, the share of the wall time it was held and the share it computed."""
    wall = ended - started
    gpus = defaultdict(lambda: {"jobs": 0, "held_s": 0.0, "busy_s": 0.0})
    first, last = ended, started
    for device, log, taken, released in leases(workdir):
        shard, kind = log.stem, log.parent.parent.name.removeprefix("embed_")
        attrs = read_attrs(workdir / "results" / "synthetic" / "embeddings" / f"{shard}.{kind}.h5")
        gpu = gpus[device]
        gpu["jobs"] += 1
        gpu["held_s"] += released - taken
        gpu["busy_s"] += attrs["embed_seconds"] * attrs["gpu_busy"]
        first, last = min(first, taken), max(last, released)
    return {
        "wall_s": round(wall, 1),
        "before_first_gpu_job_s": round(first - started, 1),
        "after_last_gpu_job_s": round(ended - last, 1),
        "gpus": {
            device: {
                "jobs": gpu["jobs"],
                "held_fraction": round(gpu["held_s"] / wall, 3),
                "busy_fraction": round(gpu["busy_s"] / wall, 3),
            }
            for device, gpu in sorted(gpus.items())
        },
        "job_seconds": {rule: round(sum(t), 1) for rule, t in job_times(workdir).items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dnabert-s", required=True, help="folder with the real tokenizer.json")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=200_000, help="about this many kept frames")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cache = args.workdir / "compile_cache"
    # the same cores for every run, so that only the GPUs change between runs
    cores = 8 * max(args.gpus) + 4
    prepare(args.workdir, args.dnabert_s, args.frames, args.shards, cache)

    # once per installation: the converted ESM-2 and compiled kernels (a small warm-up sample)
    warm = args.workdir / "warmup"
    if not (cache / "warm").exists():
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir()
        (warm / "models").symlink_to(args.workdir / "models")
        prepare(warm, args.dnabert_s, 2000, 1, cache)
        run_workflow(warm, 1, cores)
        (cache / "warm").touch()
    if not (args.workdir / "resources").exists():
        (args.workdir / "resources").symlink_to(warm / "resources")

    runs = {}
    for gpus in args.gpus:
        for stale in ("results", "logs", "benchmarks", ".snakemake"):
            shutil.rmtree(args.workdir / stale, ignore_errors=True)
        runs[gpus] = measure(args.workdir, *run_workflow(args.workdir, gpus, cores))
        print(f"{gpus} GPU(s): {runs[gpus]}", flush=True)
    one = runs[min(runs)]["wall_s"] * min(runs)
    for gpus, run in runs.items():
        run["scaling_efficiency"] = round(one / (gpus * run["wall_s"]), 3)
    device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
    manifest = (args.workdir / "results" / "synthetic" / "shards" / "manifest.tsv").read_text()
    frames = sum(int(line.split("\t")[1]) for line in manifest.splitlines()[1:])
    save("scaling", device, args.out, frames=frames, shards=args.shards, cores=cores, runs=runs)


if __name__ == "__main__":
    main()
