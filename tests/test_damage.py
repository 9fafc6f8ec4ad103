"""A damaged intermediate file (cut short, or never finished) is named by the job that reads
it and removed, and the same command run again remakes it and only what depends on it."""

import os
import re

import h5py
import numpy as np
import pytest

from virnucpro.damage import DamagedFile
from virnucpro.h5store import embedding_writer, open_embeddings
from virnucpro.predict import SCORE_COLUMNS, check_scores, classify_shard
from virnucpro.random_checkpoints import write_pickled_classifier
from virnucpro.sharding import read_shard, shard_frames

from workflow_runs import DEMO, aggregation, planned, snakemake


def cut(path, keep):
    """Truncate `path` to `keep` bytes, keeping its time stamp, as a crash or a full disk may."""
    stamp = path.stat()
    os.truncate(path, keep)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def embedding_file(path, frames=5, ordinals=None):
    ordinals = range(frames) if ordinals is None else ordinals
    with embedding_writer(path, ordinals, [f"f{i}" for i in ordinals]) as out:
        out.vectors(4, np.float32)
        out.write(0, np.ones((frames, 4), dtype=np.float32))
    return path


def test_an_embedding_file_records_its_rows_and_that_it_is_whole(tmp_path):
    with open_embeddings(embedding_file(tmp_path / "s.h5")) as h5:
        assert h5.attrs["rows"] == 5 and h5.attrs["complete"]
        assert h5["embedding"].shape == (5, 4)


def unfinished(path):
    with h5py.File(path, "a") as h5:
        del h5.attrs["complete"]


def rows_missing(path):
    with h5py.File(path, "a") as h5:
        h5.attrs["rows"] = 6


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda path: cut(path, path.stat().st_size // 2), r"HDF5 cannot open it \(.*truncated"),
        (unfinished, r"its writer never finished it \(no 'complete' attribute\)"),
        (rows_missing, r"its 'rows' attribute says 6 rows, it holds \{'ordinal': 5"),
    ],
    ids=["truncated", "unfinished", "rows-missing"],
)
def test_a_damaged_embedding_file_is_named_with_what_is_wrong(tmp_path, damage, problem):
    path = embedding_file(tmp_path / "s.h5")
    damage(path)
    with pytest.raises(DamagedFile, match=f"{path} is damaged: {problem}"), open_embeddings(path):
        pass


def test_the_two_embedding_files_of_a_shard_that_disagree_are_named(tmp_path):
    dnabert_s = embedding_file(tmp_path / "s.dnabert_s.h5")
    esm2 = embedding_file(tmp_path / "s.esm2.h5", ordinals=[4, 3, 2, 1, 0])
    classifier = write_pickled_classifier(tmp_path / "500_model.pth", 8)
    expected = f"{esm2} is damaged: it does not list the frames of {dnabert_s} in the same order"
    with pytest.raises(DamagedFile, match=expected):
        classify_shard([dnabert_s, esm2], classifier, tmp_path / "scores.tsv")


def test_a_scores_table_cut_short_is_named(tmp_path):
    path = tmp_path / "scores.tsv"
    rows = [f"{i}\tf{i}\tvirus\t0.25\t0.75\n" for i in range(3)]
    path.write_text("\t".join(SCORE_COLUMNS) + "\n" + "".join(rows))
    check_scores(path, 3)
    with pytest.raises(DamagedFile, match=f"{path} is damaged: it holds 3 whole rows, but its"):
        check_scores(path, 4)
    cut(path, path.stat().st_size - 5)
    with pytest.raises(DamagedFile, match="it holds 2 whole rows and part of one, but its shard"):
        check_scores(path, 3)


@pytest.fixture
def frame_table(tmp_path):
    (tmp_path / "n.fa").write_text(">a_chunk_1F1\nATGAAA\n>a_chunk_1F2\nTGAAAC\n")
    (tmp_path / "p.faa").write_text(">a_chunk_1F1\nMK\n>a_chunk_1F2\nMKT\n")
    frames, manifest = tmp_path / "frames.tsv", tmp_path / "manifest.tsv"
    shard_frames(tmp_path / "n.fa", tmp_path / "p.faa", 2, frames, manifest)
    return frames, manifest


def test_a_frame_table_cut_short_is_named(frame_table):
    frames, manifest = frame_table
    assert read_shard(frames, manifest, "shard_0001")[1] == ["a_chunk_1F1"]
    cut(frames, frames.stat().st_size - 3)
    expected = f"{frames} is damaged: it holds .* bytes, but {manifest} gives its shards"
    with pytest.raises(DamagedFile, match=expected):
        read_shard(frames, manifest, "shard_0001")


@pytest.mark.parametrize("keep_lines", [True, False], ids=["at-a-line", "inside-a-line"])
def test_a_manifest_cut_short_is_named(frame_table, keep_lines):
    frames, manifest = frame_table
    lines = manifest.read_text().splitlines(keepends=True)
    cut(manifest, len("".join(lines[:-1])) - (0 if keep_lines else 3))
    with pytest.raises(DamagedFile, match=f"{manifest} is damaged"):
        read_shard(frames, manifest, "shard_0000")


def test_the_job_that_finds_a_damaged_input_removes_it_and_a_rerun_remakes_only_that(workdir):
    shard = "results/demo_500/embeddings/shard_0000"
    h5 = f"{shard}.esm2.h5"  # the classifier reads it next
    scores = "results/demo_300_legacy/scores/shard_0001.tsv"  # the aggregation reads it next
    targets = [f"results/demo_500/embeddings/shard_000{i}.esm2.h5" for i in range(2)] + [
        f"results/demo_300_legacy/scores/shard_000{i}.tsv" for i in range(2)
    ]
    snakemake(workdir, *DEMO, "--cores", "2", *targets)
    cut(workdir / h5, 3000)
    cut(workdir / scores, (workdir / scores).stat().st_size // 2)
    kept = {
        p: p.stat().st_mtime_ns
        for p in (workdir / "results").glob("*/embeddings/*.h5")
        if not str(p).startswith(str(workdir / shard))
    }
    assert len(kept) == 6

    failed = snakemake(workdir, *DEMO, "--cores", "2", "--keep-going", check=False)
    assert failed.returncode != 0
    for path, job_log, problem in [
        (h5, "classify_shard/demo_500/shard_0000", r"HDF5 cannot open it \(.*truncated file"),
        (scores, "aggregate_sample/demo_300_legacy", r"it holds \d+ whole rows and part of one"),
    ]:
        text = (workdir / "logs" / f"{job_log}.log").read_text()
        removed = r"\. It has been removed: run the same command again, and it is made anew"
        assert re.search(f"DamagedFile: {path} is damaged: {problem}.*{removed}", text), text
        assert not (workdir / path).exists()
    assert sorted(planned(workdir)) == sorted(
        [
            ("classify_shard", "results/demo_300_legacy/scores/shard_0001.tsv"),
            ("classify_shard", "results/demo_500/scores/shard_0000.tsv"),
            ("embed_shard", f"{shard}.dnabert_s.h5"),
            *aggregation("demo_300_legacy", "demo_500"),
        ]
    )

    snakemake(workdir, *DEMO, "--cores", "2", "--keep-going")
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert planned(workdir) == []
