"""The demo's training run (config/demo/training.yaml, as the README runs it): a classifier
trained on real labelled fragments with the demo's encoders, evaluated on others beside the
demo's stand-in for the published one, and the 300 bp demo sample called with it, with its
calibration's probabilities; the same seed trains the same file again. At plan time: a
classifier of DNABERT-S features alone plans no ESM-2 job; a classifier to compare reads only
its models' files, and one that needs a model the sets are not embedded with is refused; a
training target without a training sheet stops at once."""

import hashlib
import re
import xml.etree.ElementTree as ET

from virnucpro.classifier_choice import TRAINED_CLASSIFIER
from virnucpro.evaluation import RATES
from virnucpro.models.classifier import MLPClassifier, save_classifier
from virnucpro.models.classifier_header import classifier_metadata, classifier_models
from virnucpro.tables import read_tsv

from workflow_runs import DEMO, TRAINING_DEMO, planned, snakemake

DEMO_300 = "resources/demo/300_model.pth"  # the demo's stand-in for the published one


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_demo_trains_evaluates_and_predicts_with_its_classifier(workdir):
    snakemake(workdir, "train", "evaluate", "all", *TRAINING_DEMO, "--cores", "2")
    classifier = workdir / TRAINED_CLASSIFIER
    metadata = classifier_metadata(classifier)
    assert metadata["chunk_size"] == "300" and metadata["seed"] == "42"
    assert metadata["random_encoders"] == "true"  # said plainly, as the figures' titles say it
    assert classifier_models(classifier) == ("dnabert_s", "esm2")
    held_out = {row.metric: float(row.value) for row in read_tsv(classifier.parent / "metrics.tsv")}
    assert held_out["n"] > 50 and 0 <= held_out["roc_auc"] <= 1
    evaluation = workdir / "results" / "training" / "evaluation"
    table = list(read_tsv(evaluation / "classifiers.tsv"))
    assert [(row.classifier, row.path) for row in table] == [
        ("trained", TRAINED_CLASSIFIER),
        ("300_model", DEMO_300),
    ]
    for row in table:
        assert all(0 <= float(getattr(row, rate)) <= 1 for rate in RATES), row
        metrics = {
            (m.scope, m.metric): m.value
            for m in read_tsv(evaluation / row.classifier / "metrics.tsv")
        }
        assert metrics["all", "n"] == row.n != "0"
        # the fragments are 3 kb: every chunk is of 300 bp
        assert metrics["length [300, 500)", "n"] == row.n
        figure = evaluation / row.classifier / "evaluation.svg"
        assert ET.parse(figure).getroot().tag.endswith("svg")
        assert "RANDOM encoders: the metrics mean nothing" in figure.read_text()
    by_sample = {row.sample: row for row in read_tsv(workdir / "results" / "samples.tsv")}
    assert by_sample["demo_300_legacy"].classifier == TRAINED_CLASSIFIER
    assert by_sample["demo_500"].classifier == "resources/demo/500_model.pth"
    assert int(by_sample["demo_300_legacy"].records) == 8
    # the trained classifier's calibration gives probabilities; the demo's .pth has none
    assert "calibration" in metadata
    trained, original = (workdir / "results" / s for s in ("demo_300_legacy", "demo_500"))
    assert all(r.virus_probability != "NA" for r in read_tsv(trained / "records.tsv"))
    assert all(r.estimated_fdr == "NA" for r in read_tsv(original / "records.tsv"))
    assert "estimated false discovery rate of the" in (trained / "summary.txt").read_text()

    # the same data and seed give the same file, byte for byte
    first = sha256(classifier)
    snakemake(workdir, "train", *TRAINING_DEMO, "--cores", "2", "--forcerun", "train_classifier")
    assert sha256(classifier) == first


def test_a_classifier_of_dnabert_s_features_plans_no_esm2_job(workdir):
    # the demo's published-format classifier takes both models: none to compare with here
    (workdir / "dnabert_s.yaml").write_text(
        "training:\n  models: [dnabert_s]\n  compare_with: []\n"
    )
    plan = planned(workdir, "train", "all", config=[*TRAINING_DEMO, "dnabert_s.yaml"])
    assert any(rule == "train_classifier" for rule, _ in plan)
    # both models only for the sample with the published classifier; the training sets and
    # the sample called with the trained classifier: DNABERT-S alone
    assert {out.split("/")[1] for rule, out in plan if rule == "embed_shard"} == {"demo_500"}
    one_model = [out for rule, out in plan if rule == "embed_shard_one_model"]
    assert one_model and all(out.endswith(".dnabert_s.h5") for out in one_model)
    assert {out.split("/")[1] for out in one_model} == {"training", "demo_300_legacy"}


def test_a_training_target_without_a_training_sheet_stops_at_once(workdir):
    result = snakemake(workdir, "train", *DEMO, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the config names no training sheet (training.sheet): the train step needs one" in output
    assert "Exception" not in output and "Traceback" not in output, output  # the message alone


def test_a_classifier_to_compare_reads_only_its_models_files(workdir):
    save_classifier(MLPClassifier(4), workdir / "dnabert_s_only.safetensors", ("dnabert_s",))
    (workdir / "compare.yaml").write_text(
        f"training:\n  compare_with: [{DEMO_300}, dnabert_s_only.safetensors]\n"
    )
    plan = snakemake(workdir, "evaluate", *TRAINING_DEMO, "compare.yaml", "--dry-run").stdout
    jobs = re.findall(
        r"^rule evaluate_classifier:\n    input: (.*)\n    output: [^,]*evaluation/([^/]+)/",
        plan,
        re.M,
    )
    # the models of the embedding files, shard_NNNN.{model}.h5, each job reads
    models = {
        name: {p.split(".")[-2] for p in re.findall(r"\S+\.h5", files)} for files, name in jobs
    }
    assert models == {
        "trained": {"dnabert_s", "esm2"},
        "300_model": {"dnabert_s", "esm2"},
        "dnabert_s_only": {"dnabert_s"},
    }


def test_a_classifier_to_compare_on_models_not_embedded_is_refused_at_plan_time(workdir):
    (workdir / "dnabert_s.yaml").write_text("training:\n  models: [dnabert_s]\n")
    config = [*TRAINING_DEMO, "dnabert_s.yaml"]
    result = snakemake(workdir, "evaluate", *config, "--dry-run", check=False)
    assert result.returncode != 0
    for needle in (
        f"training.compare_with: {DEMO_300} takes the features of ['dnabert_s', 'esm2']",
        "add ['esm2'] to training.models",
    ):
        assert needle in result.stdout + result.stderr
