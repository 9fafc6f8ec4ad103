"""The demo's training run (config/demo/training.yaml, as the README runs it): a classifier
trained on real labelled fragments with the demo's encoders, evaluated on others beside the
demo's stand-in for the published one, and the 300 bp demo sample called with it, with its
calibration's probabilities; every call of the demo follows from its columns of records.tsv
and lies on its side of the call rule the figures draw; the HTML report shows the calls and
every table in place, and names the config files given; the same seed trains the same file
again. At plan time: a classifier of DNABERT-S features alone plans no ESM-2 job; a classifier
to compare reads only its models' files, and one that needs a model the sets are not embedded
with is refused; a training target without a training sheet stops at once."""

import base64
import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

from virnucpro import __version__
from virnucpro.calls.calling import ORIGINAL_RULE
from virnucpro.io.classifier_header import classifier_metadata, classifier_models
from virnucpro.io.tables import read_tsv
from virnucpro.models.classifier import MLPClassifier, save_classifier
from virnucpro.planning.classifier_choice import TRAINED_CLASSIFIER
from virnucpro.report.plots import RANDOM_WEIGHTS
from virnucpro.training.evaluation import RATES

from conftest import copy_workflow
from figures import check_figures_follow_the_calls, svg_texts
from workflow_runs import DEMO, TRAINING_DEMO, planned, snakemake

DEMO_300 = "resources/demo/300_model.pth"  # the demo's stand-in for the published one


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


TARGETS = ("train", "evaluate", "all")
SAMPLES = ("demo_500", "demo_300_legacy")


@pytest.fixture(scope="module")
def trained_demo(tmp_path_factory):
    """The demo with its training run, as the README runs it: once for the module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("trained"))
    snakemake(workdir, *TARGETS, *TRAINING_DEMO, "--cores", "2")
    return workdir


@pytest.mark.slow
def test_the_demo_trains_evaluates_and_predicts_with_its_classifier(trained_demo):
    workdir = trained_demo
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


@pytest.mark.slow
def test_every_call_of_the_demo_follows_from_its_columns_as_the_figures_draw_it(trained_demo):
    for sample in SAMPLES:
        results = trained_demo / "results" / sample
        for row in read_tsv(results / "records.tsv"):  # the original's rule, the demo's
            assert row.call == ORIGINAL_RULE.record_call(
                float(row.best_others_score),
                float(row.best_virus_score),
                float(row.fraction_virus),
                int(row.virus_bases),
                int(row.chunks_scored),
            )
        plots = results / "plots"
        check_figures_follow_the_calls(
            plots / "score_distribution.svg",
            plots / "length_vs_score.svg",
            results / "records.tsv",
            ORIGINAL_RULE,
        )
        for figure in plots.glob("*.svg"):  # the demo's encoders are random-weight models
            assert RANDOM_WEIGHTS in "\n".join(svg_texts(figure)), figure
    # the trained classifier calls records of both kinds, some others above 0.5 (below their
    # best others score), which a line at 0.5 would put on the virus side
    rows = list(read_tsv(trained_demo / "results" / "demo_300_legacy" / "records.tsv"))
    assert {row.call for row in rows} == {"virus", "others"}
    assert any(row.call == "others" and float(row.best_virus_score) > 0.5 for row in rows)


def report_contents(path):
    """The start page (HTML) of a Snakemake report, and {path: (MIME type, content)} of each
    result in it."""
    text = path.read_text()
    start = json.loads(re.search(r"^\s*var workflow_desc = (\".*\");$", text, re.M)[1])
    results = json.loads(re.search(r"^\s*var results = (\{.*\});$", text, re.M)[1])
    return start, {
        name: (result["mime_type"], base64.b64decode(result["data_uri"].split(",", 1)[1]))
        for name, result in results.items()
    }


@pytest.mark.slow
def test_the_report_shows_the_calls_and_every_table_and_names_the_config_files(trained_demo):
    snakemake(trained_demo, *TARGETS, *TRAINING_DEMO, "--report", "report.html")
    start, results = report_contents(trained_demo / "report.html")
    # the start page: the config files read, the workflow's own first, and a table of settings
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", start)).split())
    assert (
        "This run read the config files config/config.yaml , config/demo/config.yaml , "
        "config/demo/training.yaml (each over the ones before it"
    ) in text
    assert "calling.min_virus_score null" in text and "training.seed 42" in text
    assert "{'" not in text  # no Python dict
    # every table is a page the report shows in place, none a download
    assert {mime for mime, _ in results.values()} == {"text/html", "image/svg+xml"}
    assert {
        "results/training/history.html",
        "results/training/metrics.html",
        "results/training/evaluation/classifiers.html",
        "results/training/evaluation/trained/metrics.html",
    } <= set(results)
    # each sample's calls: every record with its call, the rule they follow, the summary
    for sample in SAMPLES:
        page = results[f"results/{sample}/calls.html"][1].decode()
        for row in read_tsv(trained_demo / "results" / sample / "records.tsv"):
            assert f"<td>{html.escape(row.record_id)}</td><td>{row.call}</td>" in page
        assert html.escape(ORIGINAL_RULE.describe()) in page
        assert RANDOM_WEIGHTS in page
        assert f"virnucpro {__version__}: sample {sample}" in page  # its summary


@pytest.mark.slow
def test_the_same_data_and_seed_train_the_same_file(trained_demo):
    classifier = trained_demo / TRAINED_CLASSIFIER
    first = sha256(classifier)
    snakemake(
        trained_demo, "train", *TRAINING_DEMO, "--cores", "2", "--forcerun", "train_classifier"
    )
    assert sha256(classifier) == first


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_training_target_without_a_training_sheet_stops_at_once(workdir):
    result = snakemake(workdir, "train", *DEMO, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the config names no training sheet (training.sheet): the train step needs one" in output
    assert "Exception" not in output and "Traceback" not in output, output  # the message alone


@pytest.mark.slow
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
