"""The train and evaluate targets on real labelled fragments (DeepVirFinder's validation set)
with the demo models: the sets embedded by the prediction's shard jobs, a classifier trained
and evaluated beside another, their report built, then the trained one used to predict the demo
samples; a classifier of DNABERT-S features alone planned without ESM-2 jobs; and classifiers
to compare reading only their models' files, or refused at plan time."""

import re
import xml.etree.ElementTree as ET

import pytest
from Bio import SeqIO

from virnucpro.evaluation import RATES
from virnucpro.models.classifier import (
    MLPClassifier,
    classifier_metadata,
    classifier_models,
    save_classifier,
)
from virnucpro.tables import read_tsv

from conftest import DVF
from workflow_runs import DEMO, planned, snakemake

DEMO_300 = "resources/demo/300_model.pth"  # the demo's stand-in for the published one


def write_sets(workdir):
    """A training sheet of 20 + 20 fragments to train on and 10 + 10 to evaluate on."""
    rows = ["set\tfasta\tlabel\trole"]
    for source, label in (("virus_val.fa", "virus"), ("host_val.fa", "other")):
        records = list(SeqIO.parse(DVF / source, "fasta"))
        for role, part in (("train", records[:20]), ("evaluate", records[20:30])):
            name = f"{label}_{role}"
            SeqIO.write(part, workdir / f"{name}.fa", "fasta")
            rows.append(f"{name}\t{name}.fa\t{label}\t{role}")
    (workdir / "training.tsv").write_text("\n".join(rows) + "\n")


def training_config(workdir, *models, compare_with=()):
    """The demo config with a `training:` section over write_sets' sheet."""
    write_sets(workdir)
    demo = workdir / "config" / "demo" / "config.yaml"
    listed, compared = ", ".join(models), ", ".join(compare_with)
    demo.write_text(
        demo.read_text()
        + f"training:\n  sheet: training.tsv\n  seed: 2\n  models: [{listed}]\n"
        + f"  compare_with: [{compared}]\n"
    )


def test_train_evaluate_then_predict_with_the_trained_classifier(workdir):
    """Trained at chunk size 300 (the default) and evaluated beside the demo's classifier for
    300 bp chunks, the report of both targets built; then the demo predicted with it."""
    training_config(workdir, "dnabert_s", "esm2", compare_with=[DEMO_300])
    snakemake(workdir, "train", "evaluate", *DEMO, "--cores", "4")
    classifier = workdir / "results" / "training" / "classifier.safetensors"
    metadata = classifier_metadata(classifier)
    assert metadata["chunk_size"] == "300" and metadata["seed"] == "2"
    assert classifier_models(classifier) == ("dnabert_s", "esm2")
    assert {row.metric for row in read_tsv(workdir / "results/training/metrics.tsv")} >= {"n"}
    evaluation = workdir / "results" / "training" / "evaluation"
    table = list(read_tsv(evaluation / "classifiers.tsv"))
    assert [(row.classifier, row.path) for row in table] == [
        ("trained", "results/training/classifier.safetensors"),
        ("300_model", DEMO_300),
    ]
    for row in table:
        assert all(0 <= float(getattr(row, rate)) <= 1 for rate in RATES), row
        metrics = {
            (m.scope, m.metric): m.value
            for m in read_tsv(evaluation / row.classifier / "metrics.tsv")
        }
        assert metrics["all", "n"] == row.n != "0"
        # the fragments are 3 kb or longer: every chunk 300 bp
        assert metrics["length [300, 500)", "n"] == row.n
        figure = evaluation / row.classifier / "evaluation.svg"
        assert ET.parse(figure).getroot().tag.endswith("svg")
    snakemake(workdir, "train", "evaluate", *DEMO, "--report", "report.html")
    assert (
        "results/training/evaluation/300_model/evaluation.svg"
        in (workdir / "report.html").read_text()
    )
    demo = workdir / "config" / "demo" / "config.yaml"
    demo.write_text(
        demo.read_text().replace(f"classifier_300: {DEMO_300}", f"classifier_300: {classifier}")
    )
    snakemake(workdir, *DEMO, "--cores", "4")
    assert (workdir / "results" / "samples.tsv").exists()


def test_a_classifier_of_dnabert_s_features_plans_no_esm2_job(workdir):
    training_config(workdir, "dnabert_s")
    plan = planned(workdir, "train")
    assert any(rule == "train_classifier" for rule, _ in plan)
    assert [out for _, out in plan if out.endswith(".esm2.h5")] == []
    assert any(out.endswith(".dnabert_s.h5") for _, out in plan)


def test_a_classifier_to_compare_reads_only_its_models_files(workdir):
    dnabert_s_only = workdir / "dnabert_s_only.safetensors"
    save_classifier(MLPClassifier(4), dnabert_s_only, models=("dnabert_s",))
    training_config(workdir, "dnabert_s", "esm2", compare_with=[dnabert_s_only.name])
    plan = snakemake(workdir, "evaluate", *DEMO, "--dry-run").stdout
    jobs = re.findall(
        r"^rule evaluate_classifier:\n    input: (.*)\n    output: [^,]*evaluation/([^/]+)/",
        plan,
        re.M,
    )
    # the models of the embedding files, shard_NNNN.{model}.h5, each job reads
    models = {
        name: {p.split(".")[-2] for p in re.findall(r"\S+\.h5", files)} for files, name in jobs
    }
    assert models == {"trained": {"dnabert_s", "esm2"}, "dnabert_s_only": {"dnabert_s"}}


@pytest.mark.parametrize(
    ("models", "compare_with", "needles"),
    [
        (
            ["dnabert_s"],
            [DEMO_300],
            [
                f"training.compare_with: {DEMO_300} takes the features of ['dnabert_s', 'esm2']",
                "add ['esm2'] to training.models",
            ],
        ),
        (
            ["dnabert_s", "esm2"],
            [DEMO_300, "elsewhere/300_model.safetensors"],
            [
                "elsewhere/300_model.safetensors would be evaluated as '300_model', as is "
                f"{DEMO_300}"
            ],
        ),
    ],
    ids=["models", "names"],
)
def test_a_classifier_to_compare_is_refused_at_plan_time(workdir, models, compare_with, needles):
    training_config(workdir, *models, compare_with=compare_with)
    result = snakemake(workdir, "evaluate", *DEMO, "--dry-run", check=False)
    assert result.returncode != 0
    for needle in needles:
        assert needle in result.stdout + result.stderr
