"""Wall time of each stage of the whole workflow on one GPU, on a synthetic sample of at least
200,000 kept frames, with random full-size models (ESM-2 3B, DNABERT-S with its real config
and tokenizer, 3328-feature classifiers in the original pickled format).

    python benchmarks/stage_profile.py --dnabert-s DIR --workdir /tmp/profile \
        --frames 200000 --shards 4 --out benchmarks/results/<date>-<gpu>-stages.json

Snakemake runs the workflow with `--resources gpu=1`, so embedding jobs take the GPU one at a
time; every job's time comes from its Snakemake benchmark file, and each embedding job's model
load (and kernel compile) time, loop time and GPU busy fraction from its HDF5 attributes.
"""

import argparse
import csv
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from record import save
from synthetic_sample import reads

from virnucpro.h5store import read_attrs
from virnucpro.models.dnabert_s import DNABertConfig
from virnucpro.random_checkpoints import write_dnabert_s, write_esm2, write_pickled_classifier

REPO = Path(__file__).resolve().parents[1]
EMBEDDING_RULES = ("embed_dnabert_s", "embed_esm2")


def prepare(workdir, dnabert_s_source, frames, shards, compile_cache):
    """Models, sample and config in `workdir`; what is already there is kept."""
    models = workdir / "models"
    if not (models / "esm2_t36_3B_UR50D.pt").exists():
        write_esm2(models / "esm2_t36_3B_UR50D.pt", 36, 2560, 40, device="cuda")
        write_dnabert_s(
            models / "DNABERT-S",
            DNABertConfig(),
            Path(dnabert_s_source) / "tokenizer.json",
            device="cuda",
        )
        write_pickled_classifier(models / "500_model.pth", 768 + 2560)
    sample = workdir / f"sample_{frames}.fa"
    if not sample.exists():
        with open(sample, "w") as out:
            for name, sequence in reads(frames, seed=0):
                out.write(f">{name}\n{sequence}\n")
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "samples.tsv").write_text(
        f"sample\tfasta\tchunk_size\tchunking\nsynthetic\t{sample}\t500\toverlap\n"
    )
    config = {
        "samples": str(workdir / "config" / "samples.tsv"),
        "models": {
            "esm2": str(models / "esm2_t36_3B_UR50D.pt"),
            "dnabert_s": str(models / "DNABERT-S"),
            "classifier_300": str(models / "500_model.pth"),
            "classifier_500": str(models / "500_model.pth"),
        },
        "embedding": {
            "shards": shards,
            "device": "cuda",
            "threads": 8,
            "compile_cache": str(compile_cache),
        },
    }
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def workflow_command(workdir, *options):
    """Snakemake running this repository's workflow in `workdir` (its config/config.yaml)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "workflow/Snakefile"),
        "--directory",
        str(workdir),
        *options,
    ]


def job_times(workdir):
    """{rule: [seconds of each job]} from the Snakemake benchmark files."""
    times = defaultdict(list)
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(workdir / "benchmarks").parts[0]
        with open(path) as handle:
            times[rule].append(float(next(csv.DictReader(handle, delimiter="\t"))["s"]))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dnabert-s", required=True, help="folder with the real tokenizer.json")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--compile-cache", type=Path, help="default: WORKDIR/compile_cache")
    parser.add_argument("--prepare-only", action="store_true", help="write models and sample")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("results", "benchmarks", "logs", ".snakemake"):
        shutil.rmtree(args.workdir / stale, ignore_errors=True)
    started = time.perf_counter()
    cache = args.compile_cache or args.workdir / "compile_cache"
    prepare(args.workdir, args.dnabert_s, args.frames, args.shards, cache)
    setup_seconds = time.perf_counter() - started
    if args.prepare_only:
        return
    command = workflow_command(args.workdir, "--cores", "16", "--resources", "gpu=1")
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started

    times = job_times(args.workdir)
    embedding = []
    for h5 in sorted((args.workdir / "results" / "synthetic" / "embeddings").glob("*.h5")):
        attrs = read_attrs(h5)
        embedding.append(
            {
                "file": h5.name,
                "load_and_compile_s": round(attrs["load_seconds"], 1),
                "loop_s": round(attrs["embed_seconds"], 1),
                "gpu_busy": round(attrs["gpu_busy"], 3),
            }
        )
    total = sum(sum(v) for v in times.values())
    other = sum(sum(v) for rule, v in times.items() if rule not in EMBEDDING_RULES)
    manifest = (args.workdir / "results" / "synthetic" / "shards" / "manifest.tsv").read_text()
    frames = sum(int(line.split("\t")[1]) for line in manifest.splitlines()[1:])
    save(
        "stage_profile",
        torch.cuda.get_device_name(),
        args.out,
        **{
            "frames": frames,
            "shards": args.shards,
            "setup_s (models and sample, not part of the run)": round(setup_seconds, 1),
            "compile_cache": str(cache),
            "workflow_wall_s": round(wall, 1),
            "stages": {
                rule: {
                    "jobs": len(v),
                    "seconds": round(sum(v), 1),
                    "share_of_job_time": round(sum(v) / total, 4),
                }
                for rule, v in times.items()
            },
            "non_embedding_share_of_job_time": round(other / total, 4),
            "embedding_jobs": embedding,
        },
    )


if __name__ == "__main__":
    main()
