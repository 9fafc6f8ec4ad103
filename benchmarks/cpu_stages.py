"""The CPU stages of a sample of millions of reads on this machine's cores, without a GPU: the
preparing stage (chunk, translate, shard) before the embedding, and the aggregation (with its
classification, the viral FASTA and the plots: one job) and the table of samples after it, each
run as the workflow's job runs it, in a process of its own, with every core as its workers.

    python benchmarks/cpu_stages.py --reads 1000000 10000000 --workdir /tmp/cpu-stages \
        --out benchmarks/results/<date>-<machine>-cpu-stages.json

Samples: reads of 150 bp cut from real sequence (samples.py, as the other benchmarks), chunk
150, classified on DNABERT-S's features alone, as the scale benchmark's DNABERT-S scenarios; so
each sample is cut into the shards the workflow would cut it into. What the GPU would compute
stands in as embedding files of one float16 value a frame holding random scores, stored with
the classifier's SHA-256 as an embedding job stores them, so the aggregation reads them as it
reads a job's. Per stage: wall, CPU seconds and the peak memory of its process and its workers
together (psutil, every 20 ms, as Snakemake's benchmark files sum a job's processes); per
sample, the stages before the GPU and those after it; the samples side by side show how memory
grows with the sample.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
from record import save
from samples import read_genomes, reads, write_fasta

from virnucpro.calls.calling import CallRule
from virnucpro.calls.regions import RegionSettings

REPO = Path(__file__).resolve().parents[1]
MODELS = ("dnabert_s",)
CHUNK_SIZE = 150
BEFORE_GPU = ("prepare_sample",)
AFTER_GPU = ("aggregate_sample", "tabulate_samples")  # the workflow's jobs after the GPU's


def paths(run):
    """Every file of a sample's run, named as the rules name them."""
    return SimpleNamespace(
        fasta=run / "reads.fa",
        classifier=run / "classifier.safetensors",
        input_records=run / "prepare" / "input_records.tsv",
        chunk_frames=run / "prepare" / "chunk_frames.tsv",
        parts=run / "prepare" / "parts.tsv",
        frames=run / "shards" / "frames.tsv",
        manifest=run / "shards" / "manifest.tsv",
        embeddings=run / "embeddings",
        out=run / "results",
    )


def stage(name, run, workers):
    """One stage, in this process, as the rule's script runs it: {step: wall seconds} of its
    steps where it has several."""
    p = paths(run)
    outputs = SimpleNamespace(
        predictions=p.out / "prediction_results.txt",
        highestscore=p.out / "prediction_results_highestscore.csv",
        records=p.out / "records.tsv",
        chunks=p.out / "chunks.tsv",
        regions=p.out / "regions.tsv",
        summary=p.out / "summary.txt",
        fna=p.out / "virus.fna",
        regions_fna=p.out / "virus_regions.fna",
        calls=p.out / "calls.html",
        distribution=p.out / "plots" / "score_distribution.svg",
        length=p.out / "plots" / "length_vs_score.svg",
        tracks=p.out / "plots" / "score_tracks.svg",
    )
    if name == "prepare_sample":
        from virnucpro.planning.sizing import shards_for_sample
        from virnucpro.stages.prepare import prepare_sample

        shards = shards_for_sample(p.fasta, CHUNK_SIZE, "overlap", MODELS)
        prepare_sample(p.fasta, CHUNK_SIZE, "overlap", MODELS, shards, p, workers)
        return {}
    if name == "aggregate_sample":
        from virnucpro.stages.aggregate import aggregate_sample
        from virnucpro.stages.outputs import write_sample_outputs

        started = time.perf_counter()
        embeddings = [[path] for path in sorted(p.embeddings.glob("*.h5"))]
        settings = {"classifier": p.classifier, "chunk_size": CHUNK_SIZE, "chunking": "overlap"}
        rule = CallRule()
        rows = aggregate_sample(
            "reads", p, embeddings, outputs, settings, rule, RegionSettings(), workers
        )
        aggregated = time.perf_counter()
        write_sample_outputs("reads", p.fasta, p.parts, outputs, rows, rule, outputs, workers)
        return {
            "aggregation_s": round(aggregated - started, 2),
            "viral_fasta_and_plots_s": round(time.perf_counter() - aggregated, 2),
        }
    from virnucpro.stages.samples_table import tabulate_samples

    summary = p.out / "samples.tsv", p.out / "samples.html"
    tabulate_samples({"reads": (outputs.records, outputs.summary, {})}, *summary)
    return {}


def measured(name, run, workers):
    """Run a stage in a process of its own: {wall_s, cpu_s, peak_gb} of it and its workers, and
    main_cpu_s, its own process's (the part that does not spread over the workers)."""
    command = [sys.executable, __file__, "--stage", name, "--run", str(run)]
    started = time.perf_counter()
    child = subprocess.Popen([*command, "--workers", str(workers)], stdout=subprocess.PIPE)
    process, peak, cpu = psutil.Process(child.pid), 0, {}
    while child.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
        except psutil.Error:
            break
        rss = 0
        for member in tree:
            try:
                rss += member.memory_info().rss
                times = member.cpu_times()
                cpu[member.pid] = times.user + times.system
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.02)
    wall = time.perf_counter() - started
    steps = child.stdout.read()
    if child.wait() != 0:
        raise RuntimeError(f"stage {name} failed")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(cpu.values()), 1),
        "main_cpu_s": round(cpu.get(child.pid, 0.0), 1),
        "peak_gb": round(peak / 2**30, 3),
        **json.loads(steps),
    }


def stand_in_embeddings(run, seed=0):
    """Embedding files as the shards' jobs would leave them for a DNABERT-S-only classifier:
    their frames in a job's order (longest first: here at random), one float16 value a frame,
    and random scores stored with the classifier's digest."""
    from virnucpro.calls.scoring import SCORED_WITH, classifier_digest
    from virnucpro.io.h5store import embedding_writer
    from virnucpro.io.shards import read_manifest, read_shard
    from virnucpro.models.classifier import MLPClassifier, save_classifier

    p = paths(run)
    save_classifier(MLPClassifier(768), p.classifier, models=MODELS)
    digest, rng = classifier_digest(p.classifier), np.random.default_rng(seed)
    for row in read_manifest(p.manifest):
        ordinals, ids, _, _ = read_shard(p.frames, p.manifest, row["shard"])
        order = rng.permutation(len(ids))
        path = p.embeddings / f"{row['shard']}.dnabert_s.h5"
        with embedding_writer(path, ordinals[order], [ids[i] for i in order]) as out:
            out.vectors(1, np.float16)
            out.write(0, np.zeros((len(ids), 1), dtype=np.float32))
            virus = rng.random(len(ids), dtype=np.float32)
            out.store("scores", np.column_stack([1 - virus, virus]))
            out.attrs[SCORED_WITH] = digest
            out.attrs.update(
                model="DNABERT-S",
                model_path="DNABERT-S",
                random_weights=True,
                precision="fp16",
                device="cuda",
            )


def sample(args, n):
    """A sample's run directory, its FASTA written once; what a previous sample left removed."""
    run = args.workdir / f"reads-{n}"
    fasta = paths(run).fasta
    if not fasta.exists():
        run.mkdir(parents=True, exist_ok=True)
        write_fasta(reads(read_genomes(args.genomes), n, 150, seed=0), fasta)
    for name in ("prepare", "shards", "embeddings", "results"):
        subprocess.run(["rm", "-rf", str(run / name)], check=True)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", nargs="+", type=int, default=[1_000_000])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--genomes", type=Path, default=Path(__file__).parents[1] / "tests/data/dvf"
    )
    parser.add_argument("--workers", type=int, default=psutil.cpu_count())
    parser.add_argument("--out", type=Path)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.run, args.workers)))
        return
    samples = {}
    for n in args.reads:
        run = sample(args, n)
        stages = {name: measured(name, run, args.workers) for name in BEFORE_GPU}
        stand_in_embeddings(run)
        stages |= {name: measured(name, run, args.workers) for name in AFTER_GPU}
        manifest = (paths(run).manifest).read_text().splitlines()
        samples[n] = {
            "shards": len(manifest) - 1,
            "stages": stages,
            "before_gpu_s": round(sum(stages[name]["wall_s"] for name in BEFORE_GPU), 2),
            "after_gpu_s": round(sum(stages[name]["wall_s"] for name in AFTER_GPU), 2),
            "peak_gb": max(s["peak_gb"] for s in stages.values()),
        }
        print(json.dumps({n: samples[n]}), flush=True)
    device = f"{psutil.cpu_count()} CPU cores ({psutil.cpu_count(logical=False)} physical)"
    save("cpu_stages", device, args.out, workers=args.workers, samples=samples)


if __name__ == "__main__":
    main()
