"""The job graph is a function of the config and the sample sheet alone: once a sample is
finished, adding another sample, changing the GPUs or moving the run to the SLURM profile
plans nothing for it."""

import shutil

import pytest

from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.models.classifier import MLPClassifier, save_classifier
from virnucpro.planning.sizing import frame_seconds, shard_count
from virnucpro.sequences.frames import kept_frame_sizes

from conftest import copy_workflow
from workflow_runs import DEMO, planned, set_config, snakemake


@pytest.fixture(scope="module")
def demo_finished(tmp_path_factory):
    """The demo run to the end with `shards: auto`, as a user runs it: once for the module."""
    run = copy_workflow(tmp_path_factory.mktemp("finished"))
    set_config(run, shards="auto")
    snakemake(run, *DEMO, "--cores", "2")
    assert planned(run) == []
    return run


@pytest.fixture
def finished(demo_finished, tmp_path):
    """A copy of the finished demo for one test to change: its files' times and Snakemake's
    records of them kept (copytree copies with copy2), so it is as finished as the original."""
    return shutil.copytree(demo_finished, tmp_path / "finished", symlinks=True)


@pytest.mark.slow
def test_adding_a_larger_sample_plans_only_that_sample(finished):
    # 600,000 reads (100 MB) whose six frames are all stop-free (poly-A: K and F), about 190
    # million ESM-2 tokens: many shards' worth of both models, where each demo sample has one
    larger = finished / "larger.fa"
    with open(larger, "w") as handle:
        handle.writelines(f">read{i}\n{'A' * 150}\n" for i in range(600_000))
    with open(finished / "config" / "demo" / "samples.tsv", "a") as handle:
        handle.write(f"larger\t{larger}\t300\toverlap\n")
    plan = planned(finished)
    # the table of all samples gains a row; nothing of the finished samples is redone
    assert ("tabulate_samples", "results/samples.tsv") in plan
    assert {output.split("/")[1] for rule, output in plan if rule != "tabulate_samples"} == {
        "larger"
    }
    shards = [output for rule, output in plan if rule == "embed_shard"]
    residues, bases = zip(*kept_frame_sizes("A" * 150), strict=True)
    read = frame_seconds(residues, bases, EMBEDDING_MODELS).sum()
    assert len(shards) == shard_count(600_000 * read) > 1


@pytest.mark.slow
def test_other_gpus_plan_nothing(finished, tmp_path):
    set_config(finished, gpus=[0, 1, 2], lease_dir=str(tmp_path / "leases"))
    assert planned(finished) == []


@pytest.mark.slow
def test_the_slurm_profile_plans_nothing(finished):
    plan = snakemake(finished, *DEMO, "--profile", "profiles/slurm", "--dry-run").stdout
    assert "Nothing to be done" in plan, plan


@pytest.mark.slow
def test_a_classifier_of_dnabert_s_features_alone_plans_no_esm2_job(workdir):
    classifier = workdir / "dnabert_s_500.safetensors"
    save_classifier(MLPClassifier(48), classifier, models=("dnabert_s",))
    config = workdir / "config" / "demo" / "config.yaml"
    config.write_text(config.read_text().replace("resources/demo/500_model.pth", str(classifier)))
    embedding = [(rule, out) for rule, out in planned(workdir) if rule.startswith("embed_shard")]
    assert sorted(embedding) == [
        ("embed_shard", "results/demo_300_legacy/embeddings/shard_0000.dnabert_s.h5"),
        ("embed_shard", "results/demo_300_legacy/embeddings/shard_0001.dnabert_s.h5"),
        ("embed_shard_one_model", "results/demo_500/embeddings/shard_0000.dnabert_s.h5"),
        ("embed_shard_one_model", "results/demo_500/embeddings/shard_0001.dnabert_s.h5"),
    ]


@pytest.mark.slow
def test_the_report_of_a_finished_run_builds(finished):
    """--report plans with no cores given: the plan must not need them."""
    snakemake(finished, *DEMO, "--report", "report.html")
    report = (finished / "report.html").read_text()
    assert "score_tracks.svg" in report and "calls.html" in report
