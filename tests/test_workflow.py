"""The Snakemake workflow itself: lint, format, the demo end to end, and a rerun that redoes
only what a deleted shard file needs. Config and sample sheet errors: test_bad_input.py."""

import subprocess
import sys

from conftest import REPO
from workflow_runs import DEMO, planned, snakemake

RULES = {
    "build_demo_models",
    "convert_esm2",
    "chunk_sequences",
    "translate_frames",
    "shard_frames",
    "embed_shard",
    "classify_shard",
    "aggregate_sample",
}


def test_lint_is_clean():
    result = snakemake(REPO, *DEMO, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dry_run_plans_every_rule(workdir):
    assert {rule for rule, _ in planned(workdir)} == RULES


def test_the_demo_runs_and_a_rerun_redoes_only_a_deleted_shard(workdir):
    snakemake(workdir, *DEMO, "--cores", "2")
    for sample in ("demo_500", "demo_300_legacy"):
        results = workdir / "results" / sample
        for name in (
            "prediction_results.txt",
            "prediction_results_highestscore.csv",
            "records.tsv",
            "chunks.tsv",
            "summary.txt",
        ):
            assert (results / name).stat().st_size > 0, name
        assert len(list((results / "embeddings").glob("*.h5"))) == 4
        assert not (results / "prepare" / "chunks.fa").exists()  # temp: removed once used
    assert planned(workdir) == []

    embeddings = workdir / "results" / "demo_500" / "embeddings"
    (embeddings / "shard_0001.esm2.h5").unlink()
    others = {p: p.stat().st_mtime_ns for p in embeddings.glob("shard_0000.*.h5")}
    plan = planned(workdir)
    assert sorted(plan) == [
        ("aggregate_sample", "results/demo_500/prediction_results.txt"),
        ("classify_shard", "results/demo_500/scores/shard_0001.tsv"),
        ("embed_shard", "results/demo_500/embeddings/shard_0001.dnabert_s.h5"),
    ]
    before = (workdir / "results" / "demo_500" / "prediction_results.txt").read_text()
    snakemake(workdir, *DEMO, "--cores", "2")
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert (workdir / "results" / "demo_500" / "prediction_results.txt").read_text() == before
