"""End-to-end scaling over the GPUs of one machine: the whole workflow on a synthetic sample with
random full-size models, once on 1 GPU and once on each larger count asked for, with wall time,
each GPU's busy fraction and the scaling efficiency T1 / (K * TK).

    python benchmarks/scaling.py --dnabert-s DIR --workdir /tmp/scaling --frames 100000 \
        --shards 4 --gpus 1 2 --out benchmarks/results/<date>-<gpu>x2-scaling.json

Model conversion and kernel compilation happen once, before the timed runs, as they do once per
installation; every timed run starts from the sharded frames' inputs (a fresh results/).
"""

import argparse
import re
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from record import save
from stage_profile import prepare, workflow_command

from virnucpro.h5store import read_attrs

LEASE = re.compile(r"lease on GPU (\S+) taken")


def run_workflow(workdir, gpus):
    config = workdir / "config" / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["embedding"]["gpus"] = list(range(gpus))
    config.write_text(yaml.safe_dump(settings))
    command = workflow_command(workdir, "--cores", str(8 * gpus + 4), "--quiet", "all")
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def busy_by_gpu(workdir, wall):
    """Each GPU's summed batch-loop time over the run's wall time, from the jobs' logs and files."""
    busy = defaultdict(float)
    for h5 in (workdir / "results" / "synthetic" / "embeddings").glob("*.h5"):
        shard, kind = h5.name.split(".")[:2]
        log = workdir / "logs" / f"embed_{kind}" / "synthetic" / f"{shard}.log"
        (device,) = LEASE.findall(log.read_text())
        attrs = read_attrs(h5)
        busy[device] += attrs["embed_seconds"] * attrs["gpu_busy"]
    return {device: round(seconds / wall, 3) for device, seconds in sorted(busy.items())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dnabert-s", required=True, help="folder with the real tokenizer.json")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cache = args.workdir / "compile_cache"
    prepare(args.workdir, args.dnabert_s, args.frames, args.shards, cache)
    settings = yaml.safe_load((args.workdir / "config" / "config.yaml").read_text())
    settings["embedding"]["device"] = "auto"
    (args.workdir / "config" / "config.yaml").write_text(yaml.safe_dump(settings))

    # once per installation: the converted ESM-2 and compiled kernels (a small warm-up sample)
    warm = args.workdir / "warmup"
    if not (cache / "warm").exists():
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir()
        (warm / "models").symlink_to(args.workdir / "models")
        prepare(warm, args.dnabert_s, 2000, 1, cache)
        run_workflow(warm, 1)
        (cache / "warm").touch()
    if not (args.workdir / "resources").exists():
        (args.workdir / "resources").symlink_to(warm / "resources")

    runs = {}
    for gpus in args.gpus:
        for stale in ("results", "logs", "benchmarks", ".snakemake"):
            shutil.rmtree(args.workdir / stale, ignore_errors=True)
        wall = run_workflow(args.workdir, gpus)
        runs[gpus] = {"wall_s": round(wall, 1), "gpu_busy": busy_by_gpu(args.workdir, wall)}
        print(f"{gpus} GPU(s): {runs[gpus]}", flush=True)
    one = runs[min(runs)]["wall_s"] * min(runs)
    for gpus, run in runs.items():
        run["scaling_efficiency"] = round(one / (gpus * run["wall_s"]), 3)
    device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
    save("scaling", device, args.out, frames=args.frames, shards=args.shards, runs=runs)


if __name__ == "__main__":
    main()
