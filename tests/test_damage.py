"""A damaged intermediate file (cut short, or never finished) is named by the job that reads
it and removed, and the same command run again remakes it and only what depends on it."""

import os
import re

import h5py
import numpy as np
import pytest

from virnucpro.calls.calling import CallRule
from virnucpro.calls.regions import RegionSettings
from virnucpro.calls.scoring import ShardScorer
from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.damage import DamagedFile, InputGone, removing_damaged_inputs
from virnucpro.io.h5store import embedding_writer, open_embeddings
from virnucpro.io.shards import read_shard
from virnucpro.io.table_sizes import check_sizes
from virnucpro.io.tables import read_tsv
from virnucpro.stages.aggregate import aggregate_sample
from virnucpro.stages.prepare import prepare_sample

from stages import prepared, prepared_by_hand, sample_outputs
from workflow_runs import DEMO, aggregation, planned, snakemake

PROFILE = ["--profile", "profiles/local", *DEMO]


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
        ShardScorer(classifier).check([dnabert_s, esm2], 0, 5)


def test_an_embedding_file_of_other_frames_than_its_shards_is_named(tmp_path):
    path = embedding_file(tmp_path / "s.esm2.h5", ordinals=[5, 6, 7, 8, 9])
    scorer = ShardScorer(write_pickled_classifier(tmp_path / "500_model.pth", 4))
    scorer.check([path], 5, 5)
    for first, frames in ((0, 5), (5, 6), (6, 5)):
        with pytest.raises(DamagedFile, match=f"{path} is damaged: it holds 5 frames, not the"):
            scorer.check([path], first, frames)


def hand_sample(directory):
    """A sample of 12 reads, 3 of them without a frame, in parts of 2 records, 2 shards."""
    records = [(f"r{i}", 150, 1, "") for i in range(12)]
    chunks = [
        (f"r{i}_chunk_1", f"r{i}", 1, 150, 150, "" if i % 4 == 1 else "F1,R2", "")
        for i in range(12)
    ]
    classifier = write_pickled_classifier(directory / "500_model.pth", 4)
    scores = [(0.25, 0.75), (0.5, 0.5)] * 9
    paths, embeddings = prepared_by_hand(
        directory, records, chunks, scores, classifier, part_records=2, shards=2
    )
    return paths, embeddings, classifier


def line_end(path, lines):
    """The byte at which the first `lines` lines of `path` end (negative: all but so many)."""
    return len(b"".join(path.read_bytes().splitlines(keepends=True)[:lines]))


def rewrite_part(parts_tsv, part, column, change):
    """Change one number of the parts table, as a table of another run would hold it."""
    lines = [line.split("\t") for line in parts_tsv.read_text().splitlines()]
    at = lines[0].index(column)
    lines[part + 1][at] = str(int(lines[part + 1][at]) + change)
    parts_tsv.write_text("".join("\t".join(line) + "\n" for line in lines))


@pytest.mark.parametrize(
    ("damage", "named", "problem"),
    [
        (lambda p: cut(p.parts, p.parts.stat().st_size - 3), "parts", "it is not a table of"),
        # its rows left whole: the records table runs on past them
        (lambda p: cut(p.parts, line_end(p.parts, -1)), "parts", "its rows of .* end at byte"),
        (
            lambda p: cut(p.input_records, p.input_records.stat().st_size - 20),
            "input_records",
            "it holds .* bytes",
        ),
        (
            lambda p: cut(p.input_records, line_end(p.input_records, -1)),
            "input_records",
            "it holds .* bytes",
        ),
        (
            lambda p: cut(p.chunk_frames, p.chunk_frames.stat().st_size - 1),
            "chunk_frames",
            "it holds .* bytes",
        ),
        (lambda p: rewrite_part(p.parts, 5, "text_start", 1), "parts", "part 5 is"),
        (lambda p: rewrite_part(p.parts, 5, "frames", 1), "parts", "its parts hold 19 frames"),
        # the part's range of the records table holds one record more than it says: found by
        # the worker process that reads the part
        (
            lambda p: rewrite_part(p.parts, 3, "records", -1),
            "input_records",
            "it holds 2 rows where",
        ),
    ],
    ids=[
        "parts-cut",
        "parts-cut-at-a-line-end",
        "records-cut",
        "records-cut-at-a-line-end",
        "chunks-cut",
        "parts-text",
        "parts-frames",
        "part-rows",
    ],
)
def test_prepare_tables_that_do_not_match_the_parts_table_are_named_and_removed(
    tmp_path, damage, named, problem
):
    paths, embeddings, classifier = hand_sample(tmp_path)
    damage(paths)
    settings = {"classifier": classifier, "chunk_size": 150, "chunking": "overlap"}
    path = getattr(paths, named)
    outputs = sample_outputs(tmp_path / "out")
    expected = f"{path} is damaged: {problem}.* It has been removed"
    with pytest.raises(DamagedFile, match=expected), removing_damaged_inputs(()):
        aggregate_sample(
            "s", paths, embeddings, outputs, settings, CallRule(), RegionSettings(), workers=2
        )
    assert not path.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_the_summary_ends_with_the_bytes_of_the_tables_and_names_a_table_cut_short(tmp_path):
    paths, embeddings, classifier = hand_sample(tmp_path)
    outputs = sample_outputs(tmp_path / "out")
    settings = {"classifier": classifier, "chunk_size": 150, "chunking": "overlap"}
    aggregate_sample("s", paths, embeddings, outputs, settings, CallRule(), RegionSettings())
    tables = [outputs.records, outputs.chunks, outputs.regions]
    sizes = ", ".join(f"{path.name} {path.stat().st_size}" for path in tables)
    assert outputs.summary.read_text().endswith(f"\ntables as written (bytes): {sizes}\n")
    check_sizes(outputs.summary, tables)

    lines = outputs.records.read_text().splitlines(keepends=True)
    cut(outputs.records, len("".join(lines[:-1])))  # every row left whole
    expected = (
        f"{outputs.records} is damaged: it holds .* bytes, but {outputs.summary} says it was "
        f"written with {sum(map(len, lines))}"
    )
    with pytest.raises(DamagedFile, match=expected):
        check_sizes(outputs.summary, tables)


@pytest.mark.parametrize("keep_lines", [True, False], ids=["at-a-line", "inside-a-line"])
def test_a_summary_cut_short_is_named(tmp_path, keep_lines):
    records = tmp_path / "records.tsv"
    records.write_text("record_id\na\n")
    summary = tmp_path / "summary.txt"
    summary.write_text("sample s\nrecords: 1\ntables as written (bytes): records.tsv 12\n")
    check_sizes(summary, [records])
    lines = summary.read_text().splitlines(keepends=True)
    cut(summary, len("".join(lines[:-1])) - (0 if keep_lines else 3))
    expected = f"{summary} is damaged: it lacks its last line, 'tables as written \\(bytes\\): "
    with pytest.raises(DamagedFile, match=expected):
        check_sizes(summary, [records])


@pytest.fixture
def frame_table(tmp_path):
    (tmp_path / "in.fa").write_text(">a\nATGAAATAG\n")  # four frames kept
    paths = prepared(tmp_path)
    prepare_sample(tmp_path / "in.fa", 500, "overlap", EMBEDDING_MODELS, 2, paths)
    return paths.frames, paths.manifest


def test_a_frame_table_cut_short_is_named(frame_table):
    frames, manifest = frame_table
    assert read_shard(frames, manifest, "shard_0001")[1] == ["a_chunk_1R2", "a_chunk_1R3"]
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


def test_a_frame_table_that_another_job_removed_is_said_to_be_so(frame_table, monkeypatch):
    """The other shard's job found it damaged and removed it: this job says so, not a bare
    FileNotFoundError."""
    frames, manifest = frame_table
    monkeypatch.chdir(frames.parents[1])
    frames.unlink()
    expected = (
        "shards/frames.tsv was removed while this run ran (a job that finds an input damaged "
        "removes it, and its log says why): run the same command again, and it is made anew"
    )
    inputs = [str(frames), str(manifest)]  # as Snakemake may give them
    with pytest.raises(InputGone, match=re.escape(expected)), removing_damaged_inputs(inputs):
        read_shard("shards/frames.tsv", "shards/manifest.tsv", "shard_0001")


@pytest.mark.slow
def test_the_job_that_finds_a_damaged_input_removes_it_and_a_rerun_remakes_only_that(workdir):
    shard = "results/demo_500/embeddings/shard_0000"
    h5 = f"{shard}.esm2.h5"  # the aggregation reads it next
    targets = [f"results/demo_500/embeddings/shard_000{i}.esm2.h5" for i in range(2)]
    snakemake(workdir, *DEMO, "--cores", "2", *targets)
    cut(workdir / h5, 3000)
    failed = snakemake(workdir, *DEMO, "--cores", "2", "--keep-going", check=False)
    assert failed.returncode != 0
    kept = {
        p: p.stat().st_mtime_ns
        for p in (workdir / "results").glob("*/embeddings/*.h5")
        if not str(p).startswith(str(workdir / shard))
    }
    assert len(kept) == 6  # the other sample finished beside the failure

    text = (workdir / "logs" / "aggregate_sample" / "demo_500.log").read_text()
    problem = r"HDF5 cannot open it \(.*truncated file"
    removed = r"\. It has been removed: run the same command again, and it is made anew"
    assert re.search(f"DamagedFile: {h5} is damaged: {problem}.*{removed}", text), text
    assert not (workdir / h5).exists()
    assert sorted(planned(workdir)) == sorted(
        [("embed_shard", f"{shard}.dnabert_s.h5"), *aggregation("demo_500")]
    )

    snakemake(workdir, *DEMO, "--cores", "2", "--keep-going")
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert planned(workdir) == []


def results_bytes(workdir):
    """Every file of the results by its path, and its bytes."""
    results = workdir / "results"
    return {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*") if p.is_file()}


def cut_in_a_line(path):
    """Cut inside its middle line (its new time stamp makes Snakemake read it again)."""
    os.truncate(path, line_end(path, path.read_bytes().count(b"\n") // 2) + 5)


def cut_at_a_line_end(path):
    os.truncate(path, line_end(path, path.read_bytes().count(b"\n") // 2))


@pytest.mark.parametrize("damage", [cut_in_a_line, cut_at_a_line_end], ids=lambda f: f.__name__)
@pytest.mark.slow
def test_a_records_table_cut_short_is_named_removed_and_remade_as_a_clean_run_makes_it(
    workdir, damage
):
    """Cut in a line, or at a line end (where every row left looks whole), then read by the
    table of all samples: the run names and removes it, and the same command run again gives
    the outputs of a clean run, byte for byte."""
    snakemake(workdir, *PROFILE)
    clean = results_bytes(workdir)
    records = workdir / "results" / "demo_500" / "records.tsv"
    damage(records)  # its new time stamp makes Snakemake tabulate the samples again
    failed = snakemake(workdir, *PROFILE, check=False)
    assert failed.returncode != 0
    log = (workdir / "logs" / "tabulate_samples.log").read_text()
    expected = (
        r"DamagedFile: results/demo_500/records.tsv is damaged: it holds \d+ bytes, but "
        r"results/demo_500/summary.txt says it was written with "
        rf"{len(clean['demo_500/records.tsv'])}\. It has been removed: run the same command again"
    )
    assert re.search(expected, log), log
    assert not records.exists()
    snakemake(workdir, *PROFILE)
    assert results_bytes(workdir) == clean


@pytest.mark.slow
def test_a_finished_samples_damaged_table_is_listed_with_the_samples_that_failed(workdir):
    """After a run in which a sample failed, the table of all samples lists the others; one
    whose records table is found cut short there is listed among the failed, with the damage,
    and the table is removed, so that the same command remakes it."""
    (workdir / "protein.fa").write_text(">p1\nMKTAYIAKQRQISFVKSHFSRQ*\n")
    (workdir / "config" / "demo" / "samples.tsv").write_text(
        "sample\tfasta\tchunk_size\tchunking\n"
        "demo_500\tconfig/demo/data/demo.fa\t500\toverlap\n"
        "protein\tprotein.fa\t500\toverlap\n"
    )
    assert snakemake(workdir, *PROFILE, check=False).returncode != 0
    records = workdir / "results" / "demo_500" / "records.tsv"
    cut(records, line_end(records, -1))  # its time stamp kept: no job reads it again
    assert snakemake(workdir, *PROFILE, check=False).returncode != 0

    table = {row.sample: row for row in read_tsv(workdir / "results" / "samples.tsv")}
    assert table["demo_500"].status == table["protein"].status == "failed"
    damaged = (
        r"results/demo_500/records\.tsv is damaged: it holds \d+ bytes, but "
        r"results/demo_500/summary\.txt says it was written with \d+\. It has been removed: run "
        "the same command again, and it is made anew, with what depends on it"
    )
    assert re.fullmatch(damaged, table["demo_500"].failure)
    protein = "prepare_sample: InputError: protein.fa: record 'p1' (number 1) contains"
    assert table["protein"].failure.startswith(protein)
    assert not records.exists()
