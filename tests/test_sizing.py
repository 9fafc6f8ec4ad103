"""`shards: auto`: a sample's shard count from its own input, estimated before the run."""

import gzip
import random

import pytest

from virnucpro import sizing
from virnucpro.fasta import read_records
from virnucpro.prepare import chunk_sample, translate_sample
from virnucpro.sizing import TOKENS_PER_SHARD, estimated_esm2_tokens, shard_count

from conftest import DVF, DVF_VALIDATION


def exact_esm2_tokens(fasta, chunk_size, tmp_path):
    """What the workflow's stages would give: chunk, translate, count <cls> + residues + <eos>."""
    p = tmp_path / "exact"
    chunk_sample(fasta, chunk_size, "overlap", p / "c.fa", p / "r.tsv", p / "s.tsv")
    translate_sample(p / "c.fa", p / "s.tsv", p / "n.fa", p / "p.faa", p / "t.tsv")
    proteins = (p / "p.faa").read_text().splitlines()[1::2]
    return sum(len(protein) + 2 for protein in proteins)


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
    text = "".join(f">{name}\n{sequence}\n" for name, sequence in records)
    if path.suffix != ".gz":
        path.write_text(text)
        return path
    step = -(-len(text) // members)  # bgzip-like: several gzip members back to back
    path.write_bytes(
        b"".join(gzip.compress(text[i : i + step].encode()) for i in range(0, len(text), step))
    )
    return path


@pytest.mark.parametrize(
    ("name", "members"), [("reads.fa", 1), ("reads.fa.gz", 1), ("reads.fa.gz", 40)]
)
def test_the_estimate_of_short_reads_is_close(tmp_path, real_reads, monkeypatch, name, members):
    monkeypatch.setattr(sizing, "SAMPLED_BYTES", 64 * 1024)  # a small part of the 0.8 MB file
    fasta = write(real_reads, tmp_path / name, members)
    exact = exact_esm2_tokens(fasta, 300, tmp_path)
    assert estimated_esm2_tokens(fasta, 300, "overlap") == pytest.approx(exact, rel=0.1)


def test_the_estimate_of_contigs_is_close(tmp_path, monkeypatch):
    monkeypatch.setattr(sizing, "SAMPLED_BYTES", 64 * 1024)
    fasta = DVF / "virus_val.fa"  # 3 kb fragments: six chunks of 500 bp each
    exact = exact_esm2_tokens(fasta, 500, tmp_path)
    assert estimated_esm2_tokens(fasta, 500, "overlap") == pytest.approx(exact, rel=0.1)


def test_unreadable_input_estimates_as_empty(tmp_path):
    broken = tmp_path / "broken.fa.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage that does not inflate")
    assert estimated_esm2_tokens(broken, 500, "overlap") == 0
    assert estimated_esm2_tokens(tmp_path / "missing.fa", 500, "overlap") == 0


def test_counts_divide_evenly_over_common_gpu_counts():
    counts = [shard_count(k * TOKENS_PER_SHARD) for k in (0, 0.5, 1, 1.1, 2, 2.5, 5, 9, 17)]
    assert counts == [1, 1, 1, 2, 2, 4, 8, 16, 24]
    assert shard_count(26_700_000) == 2  # 300,000 reads of 150 bp: one shard per GPU of two
