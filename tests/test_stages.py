"""The embedding and classification stages on real frames with the demo's tiny models."""

import bz2
import gzip

import numpy as np
import pytest
import torch

from virnucpro.calls.calling import CallRule
from virnucpro.calls.regions import RegionSettings
from virnucpro.calls.scoring import ShardScorer
from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.io import fasta
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.h5store import read_embeddings
from virnucpro.io.shards import read_shard
from virnucpro.io.tables import read_tsv
from virnucpro.models.classifier import MLPClassifier, save_classifier
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.runtime.engine import embed_all
from virnucpro.stages.aggregate import aggregate_sample
from virnucpro.stages.embed import embed_shard
from virnucpro.stages.prepare import prepare_sample

from conftest import DEMO_FA, fastq
from stages import prepared, run_sample, sample_outputs


def test_every_kept_frame_is_embedded_scored_and_reported_once(demo_run):
    shards = demo_run / "shards"
    frame_ids = [row.frame_id for row in read_tsv(shards / "frames.tsv")]
    sharded = [
        frame_id
        for row in read_tsv(shards / "manifest.tsv")
        for frame_id in read_shard(shards / "frames.tsv", shards / "manifest.tsv", row.shard)[1]
    ]
    assert sorted(sharded) == sorted(frame_ids)
    reported = [
        line.split("\t")[0]
        for line in (demo_run / "prediction_results.txt").read_text().splitlines()[1:]
    ]
    assert reported == frame_ids  # in input order, as the original lists them
    records = list(read_tsv(demo_run / "records.tsv"))
    assert [r.record_id for r in records] == [
        line[1:] for line in DEMO_FA.read_text().splitlines() if line[0] == ">"
    ]
    assert "RANDOM weights" in (demo_run / "summary.txt").read_text()


def shard_of(run, name):
    return read_shard(run / "shards" / "frames.tsv", run / "shards" / "manifest.tsv", name)


def test_embedding_files_hold_ids_vectors_and_model_identity(demo_run):
    ordinals, ids, vectors, attrs = read_embeddings(demo_run / "embeddings" / "shard_0000.esm2.h5")
    shard_ordinals, shard_ids, _, proteins = shard_of(demo_run, "shard_0000")
    by_ordinal = dict(zip(shard_ordinals.tolist(), shard_ids, strict=True))
    assert sorted(ordinals.tolist()) == shard_ordinals.tolist()
    assert ids == [by_ordinal[o] for o in ordinals.tolist()]  # longest protein first
    lengths = {i: len(p) for i, p in zip(shard_ids, proteins, strict=True)}
    assert [lengths[i] for i in ids] == sorted(lengths.values(), reverse=True)
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 64)
    assert np.isfinite(vectors).all()
    assert attrs["model"] == "esm2_t4_demo" and attrs["precision"] == "fp32"
    assert attrs["random_weights"] and attrs["dim"] == 64
    dna_ordinals, dna_ids, dna_vectors, dna_attrs = read_embeddings(
        demo_run / "embeddings" / "shard_0000.dnabert_s.h5"
    )
    assert dna_ordinals.tolist() == ordinals.tolist() and dna_ids == ids  # one row order
    assert dna_vectors.shape == (len(ids), 48) and dna_attrs["model"] == "DNABERT-S-demo"


@pytest.mark.parametrize("encoder_type", [ProteinEncoder, NucleotideEncoder])
@pytest.mark.slow
def test_packing_many_frames_equals_one_at_a_time(demo_run, demo_models, encoder_type):
    is_esm2 = encoder_type is ProteinEncoder
    model = demo_models["esm2"] if is_esm2 else demo_models["dnabert_s"]
    encoder = encoder_type.load(model, torch.device("cpu"), torch.float32)
    _, _, nucleotides, proteins = shard_of(demo_run, "shard_0001")
    tokens = encoder_type.tokenize(model, proteins if is_esm2 else nucleotides)
    packed, stats = embed_all(encoder, tokens, "cpu", batch_tokens=100_000)
    alone, _ = embed_all(encoder, tokens, "cpu", batch_tokens=1)
    assert stats.batches == 1
    assert len(tokens) > 3
    np.testing.assert_allclose(packed, alone, rtol=0, atol=1e-5)


def test_an_empty_shard_gives_empty_files_and_no_scores(tmp_path, demo_models):
    (tmp_path / "in.fa").write_text(">a\nATGAAATAG\n")  # four frames kept, six shards
    paths = prepared(tmp_path)
    prepare_sample(tmp_path / "in.fa", 500, "overlap", EMBEDDING_MODELS, 6, paths)
    empty = next(row.shard for row in read_tsv(paths.manifest) if row.frames == "0")
    h5 = {kind: tmp_path / f"{kind}.h5" for kind in ("dnabert_s", "esm2")}
    embed_shard(paths.frames, paths.manifest, empty, h5, demo_models, "cpu")
    assert read_embeddings(h5["esm2"])[2].shape == (0, 64)
    scorer = ShardScorer(demo_models["classifier_500"])
    assert scorer.scores(list(h5.values()), 4).shape == (0, 2)


def test_a_classifier_for_other_models_is_an_error_naming_both(demo_run, tmp_path):
    wrong = write_pickled_classifier(tmp_path / "500_model.pth", 3328)
    embeddings = [
        [demo_run / "embeddings" / f"shard_000{i}.{kind}.h5" for kind in ("dnabert_s", "esm2")]
        for i in range(3)
    ]
    settings = {"classifier": wrong, "chunk_size": 500, "chunking": "overlap"}
    outputs = sample_outputs(tmp_path / "out")
    with pytest.raises(ValueError, match=r"takes 3328 features, but the embeddings give 48 .* 64"):
        aggregate_sample(
            "demo",
            prepared(demo_run),
            embeddings,
            outputs,
            settings,
            CallRule(),
            RegionSettings(),
        )
    assert not any((tmp_path / "out").rglob("*"))  # nothing written, not even a temporary file


@pytest.mark.slow
def test_the_outputs_do_not_depend_on_parts_workers_compression_or_fastq(
    demo_models, tmp_path, monkeypatch
):
    """The demo in a part per record, its results made by two worker processes each, from its
    gzip-compressed copy and from its records as bzip2-compressed FASTQ: every output (the
    viral FASTA too) as in blocks of 2 MiB by one process. Its classifier calls most records
    virus, so that the viral FASTA holds some."""
    torch.manual_seed(0)
    model = MLPClassifier(48 + 64).eval()
    with torch.no_grad():
        model.output_layer.bias[1] += 3
    save_classifier(model, tmp_path / "viral.safetensors")
    models = {**demo_models, "classifier_500": tmp_path / "viral.safetensors"}
    one = run_sample(DEMO_FA, models, tmp_path / "one", shards=3)
    monkeypatch.setattr(fasta, "BLOCK_BYTES", 1000)
    records = [(record.id, record.sequence) for record in fasta.read_records(DEMO_FA)]
    assert len(list(read_tsv(one / "prepare" / "parts.tsv"))) < len(records) == 8
    names = [
        "prediction_results.txt",
        "prediction_results_highestscore.csv",
        "records.tsv",
        "chunks.tsv",
        "regions.tsv",
        "virus.fna",
        "virus_regions.fna",
        "calls.html",
        *(f"plots/{figure}.svg" for figure in ("distribution", "length", "tracks")),
    ]
    inputs = {
        "demo.fa.gz": gzip.compress(DEMO_FA.read_bytes()),
        "demo.fq.bz2": bz2.compress(fastq(records).encode()),
    }
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
        run = run_sample(tmp_path / name, models, tmp_path / f"run-{name}", shards=3, workers=2)
        assert len(list(read_tsv(run / "prepare" / "parts.tsv"))) == len(records), name
        for output in names:
            assert (run / output).read_bytes() == (one / output).read_bytes(), (name, output)
    assert (one / "virus.fna").read_text().count(">") >= 4
