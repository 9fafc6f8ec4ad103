"""The Snakemake workflow itself: lint, format, the demo end to end in a user's project
directory (the workflow a module of its Snakefile), and a rerun that redoes only what a deleted
shard file needs. Config and sample sheet errors: test_bad_input.py."""

import re
import subprocess
import sys

import pytest
import yaml

from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.io.tables import read_tsv
from virnucpro.plan import SAMPLE_RESULTS  # what each sample's folder holds once run

from conftest import REPO, copy_workflow, deploy
from workflow_runs import DEMO, aggregation, planned, snakemake

RULES = {
    "build_demo_models",
    "prepare_sample",
    "link_classifier",
    "embed_shard",
    "aggregate_sample",
    "tabulate_samples",
}


# The one lint the workflow keeps (README, Set-up): its rules run in the one environment
# Snakemake itself runs in, which planning the run needs too (pip or environment.yml).
ONE_ENVIRONMENT = "Specify a conda environment or container for each rule."


def test_the_lint_finds_nothing_but_the_one_environment_of_every_rule():
    result = snakemake(REPO, *DEMO, "--lint", check=False)
    output = result.stdout + result.stderr
    linted = re.findall(r"^Lints for rule (\w+) ", output, re.M)
    lints = re.findall(r"^\s+\* (.+?):$", output, re.M)
    assert result.returncode == 1, output  # what a lint exits with, however few
    assert set(linted) >= RULES and lints == [ONE_ENVIRONMENT] * len(linted), output


def test_snakefmt_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dry_run_plans_every_rule_of_the_workflow_as_a_module_under_a_prefix(tmp_path):
    project = deploy(copy_workflow(tmp_path / "virnucpro"), tmp_path / "project", " as vnp_*")
    assert {rule for rule, _ in planned(project)} == {f"vnp_{rule}" for rule in RULES}


def files_and_times(directory):
    """Every file and folder under `directory`, with its size and time stamp."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.mark.slow
def test_the_demo_runs_in_a_project_of_its_own_and_a_rerun_redoes_only_what_a_change_needs(
    tmp_path,
):
    """In a project directory laid out as snakedeploy lays it out, beside the workflow: every
    result, log and resource lands in the project, nothing in the workflow's folder."""
    workflow = copy_workflow(tmp_path / "virnucpro")
    workdir = deploy(workflow, tmp_path / "project")
    untouched = files_and_times(workflow)
    snakemake(workdir, *DEMO, "--cores", "2")
    for sample in ("demo_500", "demo_300_legacy"):
        results = workdir / "results" / sample
        for name in SAMPLE_RESULTS:  # a FASTA is empty where no record or region is viral
            assert (results / name).stat().st_size > 0 or name.endswith(".fna"), name
        assert len(list((results / "embeddings").glob("*.h5"))) == 4
        assert not (results / "prepare" / "chunks.fa").exists()  # temp: removed once used
    assert planned(workdir) == []
    # run times go with the logs, not into the project's benchmarks/ (its scripts and results)
    assert not (workdir / "benchmarks").exists()
    assert (
        workdir / "logs" / "benchmarks" / "embed_shard" / "demo_500" / "shard_0000.tsv"
    ).is_file()

    embeddings = workdir / "results" / "demo_500" / "embeddings"
    (embeddings / "shard_0001.esm2.h5").unlink()
    others = {p: p.stat().st_mtime_ns for p in embeddings.glob("shard_0000.*.h5")}
    plan = planned(workdir)
    assert sorted(plan) == sorted(
        [
            ("embed_shard", "results/demo_500/embeddings/shard_0001.dnabert_s.h5"),
            *aggregation("demo_500"),
        ]
    )
    before = (workdir / "results" / "demo_500" / "prediction_results.txt").read_text()
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert (workdir / "results" / "demo_500" / "prediction_results.txt").read_text() == before

    # another classifier: the aggregation scores the stored embeddings again, none is recomputed
    # (the embedding jobs' classifier is a link to it, an input whose change reruns none of them)
    write_pickled_classifier(workdir / "other_500.pth", 48 + 64, seed=9)
    config = workdir / "config" / "demo" / "config.yaml"
    config.write_text(
        config.read_text().replace("resources/demo/500_model.pth", str(workdir / "other_500.pth"))
    )
    stamps = {p: p.stat().st_mtime_ns for p in embeddings.glob("*.h5")}
    link = ("link_classifier", "results/demo_500/classifier")
    assert sorted(planned(workdir)) == sorted([link, *aggregation("demo_500")])
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    log = (workdir / "logs" / "aggregate_sample" / "demo_500.log").read_text()
    for shard in ("shard_0000", "shard_0001"):
        assert f"{shard}.esm2.h5: " in log and "other_500.pth (computed here)" in log
    other = (workdir / "results" / "demo_500" / "prediction_results.txt").read_text()
    assert other != before
    # the file replaced (a classifier trained again, written under its name): the same
    write_pickled_classifier(workdir / "other_500.pth", 48 + 64, seed=10)
    assert sorted(planned(workdir)) == sorted([link, *aggregation("demo_500")])
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (workdir / "results" / "demo_500" / "prediction_results.txt").read_text() != other

    # new call thresholds: the stored scores are called again; nothing else is redone, and the
    # original's two tables, which follow the original's rule, stay as they were
    original = {
        path: path.read_bytes()
        for name in ("prediction_results.txt", "prediction_results_highestscore.csv")
        for path in (workdir / "results").glob(f"*/{name}")
    }
    with open(config, "a") as handle:
        handle.write("calling:\n  min_virus_score: 0.999\n  min_virus_fraction: 0.5\n")
    assert sorted(planned(workdir)) == sorted(aggregation("demo_500", "demo_300_legacy"))
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {path: path.read_bytes() for path in original} == original
    for sample in ("demo_500", "demo_300_legacy"):
        results = workdir / "results" / sample
        assert {r.call for r in read_tsv(results / "records.tsv")} == {"others"}
        assert (
            "calls: virus when best_virus_score >= 0.999; a record of several scored chunks "
            "(chunks_scored > 1) also needs fraction_virus >= 0.5; others otherwise\n"
        ) in (results / "summary.txt").read_text()
        assert (results / "virus.fna").read_text() == ""
        assert (results / "virus_regions.fna").read_text() == ""  # no region reaches 0.999
    [row, _] = read_tsv(workdir / "results" / "samples.tsv")
    assert (row.virus, row.min_virus_score, row.min_virus_fraction) == ("0", "0.999", "0.5")
    assert (row.esm2, row.dnabert_s) == (
        "resources/demo/esm2_t4_demo.pt",
        "resources/demo/DNABERT-S-demo",
    )  # the models its classifier takes (NA for one it does not)
    overview = (workdir / "results" / "samples.html").read_text()  # the report's page of them
    assert "<td>demo_500</td><td>finished</td><td>8</td><td>0</td>" in overview
    assert "best_virus_score &gt;= 0.999" in overview  # each sample's summary, escaped
    assert files_and_times(workflow) == untouched


@pytest.mark.slow
def test_a_run_without_cores_names_the_local_profile(workdir):
    result = snakemake(workdir, *DEMO, check=False)
    assert result.returncode != 0
    assert "snakemake --profile profiles/local" in result.stdout + result.stderr


def test_the_workflow_catalog_s_flag_names_a_profile_of_the_workflow():
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    flag, profile = usage["mandatory-flags"]["flags"].split()
    assert flag == "--profile" and (REPO / profile / "config.yaml").is_file()


def test_rules_run_in_the_one_environment():
    """No rule names a conda environment of its own: there is one environment, installed by pip
    or by environment.yml (README, Set-up), and the rules run in it."""
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        assert "conda:" not in rules.read_text(), rules


def gpu_rules():
    """The rules that take a GPU (`gpu=1` in their resources, or a `use rule` of one)."""
    text = "\n".join(path.read_text() for path in sorted((REPO / "workflow").rglob("*.smk")))
    found = set()
    for block in re.split(r"^(?=rule |use rule )", text, flags=re.M):
        if block.startswith("rule ") and "        gpu=1," in block:
            found.add(re.match(r"rule (\w+):", block)[1])
        elif block.startswith("use rule "):
            parent, child = re.match(r"use rule (\w+) as (\w+)", block).groups()
            if parent in found:
                found.add(child)
    return found


def test_the_slurm_profile_asks_a_gpu_for_every_rule_that_takes_one():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    rules = gpu_rules()
    assert {"embed_shard", "embed_shard_one_model", "train_classifier"} <= rules
    for rule in rules:
        resources = profile["set-resources"].get(rule, {})
        assert resources.get("gpu") == 1 and resources.get("slurm_partition") == "gpu", rule
