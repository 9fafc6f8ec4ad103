"""`shards: auto`: a sample's shard count from its own input and the models its classifier
takes, estimated before the run."""

import gzip
import random

import pytest

from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.fasta import read_records
from virnucpro.io.tables import read_tsv
from virnucpro.planning import sizing
from virnucpro.planning.sizing import (
    SHARD_SECONDS,
    estimated_seconds,
    frame_seconds,
    shard_count,
    shards_for_sample,
)
from virnucpro.sequences.frames import kept_frame_sizes
from virnucpro.stages.prepare import prepare_sample

from conftest import DVF, DVF_VALIDATION, fastq
from stages import prepared

DNABERT_S_ONLY = ("dnabert_s",)


def exact_seconds(fasta, chunk_size, models, tmp_path):
    """What the workflow's preparing stage gives: the work of every kept frame."""
    outputs = prepared(tmp_path / "exact")
    prepare_sample(fasta, chunk_size, "overlap", models, 1, outputs)
    frames = list(read_tsv(outputs.frames))
    residues = [len(frame.protein) for frame in frames]
    bases = [len(frame.nucleotide) for frame in frames]
    return float(frame_seconds(residues, bases, models).sum())


@pytest.fixture(scope="module")
def real_reads():
    """150 bp reads tiled over the real fragments, in random order as a sequencer gives them:
    (id, sequence)."""
    genomes = [r.sequence for path in DVF_VALIDATION for r in read_records(path)]
    tiled = [
        (f"r{g}_{start}", genome[start : start + 150])
        for g, genome in enumerate(genomes)
        for start in range(0, len(genome) - 150, 97)
    ]
    random.Random(0).shuffle(tiled)
    return tiled


def write(records, path, members=1):
    """FASTA, or FASTQ where the name says .fq; gzip-compressed where it ends .gz."""
    if ".fq" in path.suffixes:
        text = fastq(records)
    else:
        text = "".join(f">{name}\n{sequence}\n" for name, sequence in records)
    if path.suffix != ".gz":
        path.write_text(text)
        return path
    step = -(-len(text) // members)  # bgzip-like: several gzip members back to back
    path.write_bytes(
        b"".join(gzip.compress(text[i : i + step].encode()) for i in range(0, len(text), step))
    )
    return path


@pytest.mark.parametrize("models", [EMBEDDING_MODELS, DNABERT_S_ONLY], ids=["both", "dnabert_s"])
@pytest.mark.parametrize(
    ("name", "members"),
    [("reads.fa", 1), ("reads.fa.gz", 1), ("reads.fa.gz", 40), ("reads.fq.gz", 40)],
)
def test_the_estimate_of_short_reads_is_close(tmp_path, real_reads, name, members, models):
    fasta = write(real_reads, tmp_path / name, members)  # 0.8 MB (FASTQ 1.6): 64 kB are read
    exact = exact_seconds(fasta, 300, models, tmp_path)
    assert estimated_seconds(fasta, 300, "overlap", models) == pytest.approx(exact, rel=0.1)


def test_the_estimate_of_contigs_is_close(tmp_path):
    fasta = DVF / "virus_val.fa"  # 3 kb fragments: six chunks of 500 bp each
    exact = exact_seconds(fasta, 500, EMBEDDING_MODELS, tmp_path)
    assert estimated_seconds(fasta, 500, "overlap", EMBEDDING_MODELS) == pytest.approx(
        exact, rel=0.1
    )


def test_unreadable_input_estimates_as_empty(tmp_path):
    broken = tmp_path / "broken.fa.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage that does not inflate")
    assert estimated_seconds(broken, 500, "overlap", EMBEDDING_MODELS) == 0
    assert estimated_seconds(tmp_path / "missing.fa", 500, "overlap", EMBEDDING_MODELS) == 0


def test_a_small_plain_sample_is_one_shard_without_being_read(tmp_path, monkeypatch):
    def unread(path):
        raise AssertionError(f"{path} was read")

    monkeypatch.setattr(sizing, "_leading_text", unread)
    fasta = write([(f"r{i}", "A" * 150) for i in range(1000)], tmp_path / "small.fa")
    assert shards_for_sample(fasta, 300, "overlap", EMBEDDING_MODELS) == 1


def test_a_classifier_of_dnabert_s_features_alone_takes_fewer_shards(tmp_path):
    # 300,000 reads whose six frames are all stop-free (poly-A: K and F), 52 residues each
    fasta = write([(f"r{i}", "A" * 150) for i in range(300_000)], tmp_path / "reads.fa")
    both = shards_for_sample(fasta, 300, "overlap", EMBEDDING_MODELS)
    alone = shards_for_sample(fasta, 300, "overlap", DNABERT_S_ONLY)
    assert alone < both
    residues, bases = zip(*kept_frame_sizes("A" * 150), strict=True)
    assert both == shard_count(300_000 * frame_seconds(residues, bases, EMBEDDING_MODELS).sum())


def test_counts_divide_evenly_over_common_gpu_counts():
    counts = [shard_count(k * SHARD_SECONDS) for k in (0, 0.5, 1, 1.1, 2, 2.5, 5, 9, 17)]
    assert counts == [1, 1, 1, 2, 2, 4, 8, 16, 24]


def test_the_shards_of_short_reads_follow_the_models():
    """About 1.73 kept frames of 50 residues and 148 bases a 150 bp read (the end-to-end
    benchmark's sample): 300,000 reads on both models make one shard per GPU of two, a million
    on DNABERT-S alone one, ten million four."""
    per_read = 1.73 * frame_seconds([50], [148], EMBEDDING_MODELS)[0]
    assert shard_count(300_000 * per_read) == 2
    per_read = 1.73 * frame_seconds([50], [148], DNABERT_S_ONLY)[0]
    assert shard_count(1_000_000 * per_read) == 1
    assert shard_count(10_000_000 * per_read) == 4
