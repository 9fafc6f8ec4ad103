"""The demo's training at full model size on a realistic labelled set, beside a shuffled-label
control: the workflow's `train` and `evaluate` targets through profiles/local with random-weight
full-size models (full_models.py: ESM-2 3B, DNABERT-S), on the GPU the machine shows.

    python benchmarks/train_at_scale.py --genomes DIR --workdir /tmp/train --chunk-size 100 \
        --out benchmarks/results/<date>-<gpu>-train.json

Sets: DeepVirFinder's fragments in --genomes, virus_tr.fa and host_tr.fa (1,000 + 1,000 of 3 kb)
to train on, virus_val.fa and host_val.fa (100 + 100) to evaluate on, cut into --chunk-size
chunks, every stop-free frame kept (no GenBank file). The control trains on the same embedded
frames with their labels permuted among them (so each class keeps its size), with the same seed,
and is evaluated on the same evaluation frames with their true labels: what a classifier learns
from nothing. With random encoders both say only what random features let an MLP learn.

Reported: frames per set; each job's seconds (Snakemake's benchmark files), the embedding jobs'
being GPU time; the training's epochs; the held-out and evaluation metrics of both classifiers.
"""

import argparse
import random
import time
from pathlib import Path

import torch
import yaml
from full_models import full_models
from record import save
from workflow_run import REPO, is_embedding, job_table, run_workflow

from virnucpro.io.tables import read_tsv
from virnucpro.training.run import TrainingSet, evaluate_classifier, read_labels, train_classifier

SETS = {  # set: (FASTA in --genomes, label, role)
    "virus_train": ("virus_tr.fa", "virus", "train"),
    "host_train": ("host_tr.fa", "other", "train"),
    "virus_evaluate": ("virus_val.fa", "virus", "evaluate"),
    "host_evaluate": ("host_val.fa", "other", "evaluate"),
}
MODELS = ("dnabert_s", "esm2")
SEED = 42


def prepare(args):
    """The run directory: its config (full-size models, the training sheet) and sheets."""
    run = args.workdir / "run"
    (run / "config").mkdir(parents=True, exist_ok=True)
    models = full_models(args.workdir / "models")
    rows = ["set\tfasta\tlabel\trole"]
    rows += [f"{s}\t{args.genomes / f}\t{label}\t{role}" for s, (f, label, role) in SETS.items()]
    (run / "config" / "training.tsv").write_text("\n".join(rows) + "\n")
    # the workflow needs a sample sheet; the training targets plan none of its jobs
    (run / "config" / "samples.tsv").write_text(
        f"sample\tfasta\nunused\t{args.genomes}/virus_val.fa\n"
    )
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"] = {k: str(v) for k, v in models.items()}
    config["training"] = {
        "sheet": "config/training.tsv",
        "chunk_size": args.chunk_size,
        "models": list(MODELS),
        "seed": SEED,
    }
    (run / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def training_sets(run, role):
    """The TrainingSets of a role as the workflow embedded them."""
    sets = []
    for name, (fasta, label, set_role) in SETS.items():
        if set_role == role:
            folder = run / "results" / "training" / name
            shards = sorted({p.name.split(".")[0] for p in (folder / "embeddings").glob("*.h5")})
            files = [[folder / "embeddings" / f"{s}.{m}.h5" for m in MODELS] for s in shards]
            sets.append(TrainingSet(files, str(folder / "labels.tsv"), label, fasta))
    return sets


def shuffled(sets, out):
    """The sets with their frames' labels permuted among all of them (seeded)."""
    labels = {s.labels_tsv: read_labels(s.labels_tsv) for s in sets}
    pooled = [label for by_frame in labels.values() for label in by_frame.values()]
    random.Random(SEED).shuffle(pooled)
    words, drawn, result = {1: "virus", 0: "other"}, iter(pooled), []
    for s in sets:
        path = out / Path(s.labels_tsv).parent.name / "labels.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{frame}\t{words[next(drawn)]}\n" for frame in labels[s.labels_tsv]]
        path.write_text("frame_id\tlabel\n" + "".join(rows))
        result.append(s._replace(labels_tsv=str(path)))
    return result


def metrics(path):
    """The overall metrics of a metrics table (evaluation.write_metrics)."""
    return {
        r.metric: None if r.value == "NA" else float(r.value)
        for r in read_tsv(path)
        if r.scope == "all"
    }


def shuffled_control(run, chunk_size):
    """Train and evaluate on permuted labels; (held-out metrics, evaluation metrics, seconds)."""
    out = run / "control"
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    held_out = train_classifier(
        shuffled(training_sets(run, "train"), out),
        MODELS,
        chunk_size,
        SEED,
        False,
        out / "classifier.safetensors",
        out / "history.tsv",
        out / "metrics.tsv",
        device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
    )
    seconds = time.perf_counter() - started
    evaluate_classifier(
        training_sets(run, "evaluate"),
        out / "classifier.safetensors",
        out / "evaluation.tsv",
        out / "evaluation.svg",
    )
    epochs = sum(1 for _ in read_tsv(out / "history.tsv"))
    return held_out, metrics(out / "evaluation.tsv"), round(seconds, 1), epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.genomes = args.genomes.resolve()
    run = prepare(args)
    # resumed where a run stopped: the whole takes longer than one device call may
    done = run_workflow(run, False, "train", "evaluate", fresh=False)
    times = job_table(run, done.started)
    frames = {
        name: sum(1 for _ in read_tsv(run / "results" / "training" / name / "labels.tsv"))
        for name in SETS
    }
    training = run / "results" / "training"
    evaluation = next(training.glob("evaluation/**/metrics.tsv"))
    real = {
        "held_out": metrics(training / "metrics.tsv"),
        "evaluation": metrics(evaluation),
        "epochs": sum(1 for _ in read_tsv(training / "history.tsv")),
    }
    held_out, evaluated, seconds, epochs = shuffled_control(run, args.chunk_size)
    save(
        "train_at_scale",
        torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        args.out,
        chunk_size=args.chunk_size,
        frames=frames,
        train_frames=sum(frames[s] for s, (_, _, role) in SETS.items() if role == "train"),
        workflow_wall_s=round(done.wall_s, 1),
        gpu_busy=done.gpu_busy,
        jobs=times,
        embedding_gpu_s=round(
            sum(job["wall_s"] for rule in times if is_embedding(rule) for job in times[rule]), 1
        ),
        training_s=sum(job["wall_s"] for job in times["train_classifier"]),
        real_labels=real,
        shuffled_labels={
            "held_out": held_out,
            "evaluation": evaluated,
            "training_s": seconds,
            "epochs": epochs,
        },
    )


if __name__ == "__main__":
    main()
