"""The train and evaluate targets on real labelled fragments (DeepVirFinder's validation set)
with the demo models: the sets embedded by the prediction's shard jobs, a classifier trained
and evaluated, then used to predict the demo samples, with its calibration's probabilities;
and a classifier of DNABERT-S features alone planned without ESM-2 jobs."""

import xml.etree.ElementTree as ET

from Bio import SeqIO

from virnucpro.models.classifier import classifier_metadata, classifier_models
from virnucpro.tables import read_tsv

from conftest import DVF
from workflow_runs import DEMO, planned, snakemake


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


def training_config(workdir, *models):
    """The demo config with a `training:` section over write_sets' sheet."""
    write_sets(workdir)
    demo = workdir / "config" / "demo" / "config.yaml"
    listed = ", ".join(models)
    demo.write_text(
        demo.read_text() + f"training:\n  sheet: training.tsv\n  seed: 2\n  models: [{listed}]\n"
    )


def test_train_evaluate_then_predict_with_the_trained_classifier(workdir):
    training_config(workdir, "dnabert_s", "esm2")
    snakemake(workdir, "train", "evaluate", *DEMO, "--cores", "4")
    classifier = workdir / "results" / "training" / "classifier.safetensors"
    metadata = classifier_metadata(classifier)
    assert metadata["chunk_size"] == "300" and metadata["seed"] == "2"
    assert classifier_models(classifier) == ("dnabert_s", "esm2")
    assert {row.metric for row in read_tsv(workdir / "results/training/metrics.tsv")} >= {"n"}
    evaluation = workdir / "results" / "training" / "evaluation"
    assert {row.metric for row in read_tsv(evaluation / "metrics.tsv")} >= {"n"}
    assert ET.parse(evaluation / "evaluation.svg").getroot().tag.endswith("svg")
    demo = workdir / "config" / "demo" / "config.yaml"
    demo.write_text(demo.read_text().replace("resources/demo/300_model.pth", str(classifier)))
    snakemake(workdir, *DEMO, "--cores", "4")
    assert (workdir / "results" / "samples.tsv").exists()
    # the trained classifier's calibration gives probabilities; the demo's .pth has none
    assert "calibration" in metadata
    trained, original = (workdir / "results" / s for s in ("demo_300_legacy", "demo_500"))
    assert all(r.virus_probability != "NA" for r in read_tsv(trained / "records.tsv"))
    assert all(r.estimated_fdr == "NA" for r in read_tsv(original / "records.tsv"))
    assert "estimated false discovery rate of the" in (trained / "summary.txt").read_text()


def test_a_classifier_of_dnabert_s_features_plans_no_esm2_job(workdir):
    training_config(workdir, "dnabert_s")
    plan = planned(workdir, "train")
    assert any(rule == "train_classifier" for rule, _ in plan)
    assert [out for _, out in plan if out.endswith(".esm2.h5")] == []
    assert any(out.endswith(".dnabert_s.h5") for _, out in plan)
