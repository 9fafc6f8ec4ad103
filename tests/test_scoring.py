"""The classifier's scores are the same whether the embedding job computed them as its vectors
arrived or the classification stage computed them from the stored files."""

import logging
import re
import shutil

import h5py
import numpy as np
import pytest
import torch

from virnucpro.calls import scoring
from virnucpro.calls.scoring import SCORED_WITH, ShardScorer, classifier_digest
from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.io.classifier_header import classifier_models
from virnucpro.io.h5store import embedding_writer, open_embeddings, read_attrs, read_embeddings
from virnucpro.models.classifier import MLPClassifier, save_classifier, scores
from virnucpro.stages.embed import embed_shard

from conftest import DEMO_FA
from stages import run_sample


def random_vectors(frames, width, seed):
    return np.random.default_rng(seed).standard_normal((frames, width), dtype=np.float32)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 7 frames, so that a few dozen frames cross several block boundaries."""
    monkeypatch.setattr(scoring, "BLOCK_ROWS", 7)


def test_streamed_scores_equal_the_stored_files_scores_bit_for_bit(tmp_path, small_blocks):
    torch.manual_seed(0)
    model = MLPClassifier(5 + 9).eval()
    dna, protein = random_vectors(40, 5, 1), random_vectors(40, 9, 2)
    paths = {"dna": tmp_path / "d.h5", "protein": tmp_path / "p.h5"}
    for name, vectors in (("dna", dna), ("protein", protein)):
        with embedding_writer(paths[name], range(40), ["f"] * 40) as out:
            out.vectors(vectors.shape[1], np.float32)
            out.write(0, vectors)
    with open_embeddings(paths["dna"]) as d, open_embeddings(paths["protein"]) as p:
        from_files = scoring.score_files(model, [d["embedding"], p["embedding"]], "c.pth")

    streamed = scoring.StreamingScorer(model, "c.pth", [dna], 40)
    for start, end in [(0, 3), (3, 4), (4, 19), (19, 21), (21, 40)]:  # the engine's batches
        streamed.add(start, protein[start:end])
    np.testing.assert_array_equal(streamed.result(), from_files)
    # and both are the classifier's softmax over [DNABERT-S | ESM-2] (independent of blocks)
    whole = scores(model, torch.from_numpy(np.concatenate([dna, protein], axis=1))).numpy()
    np.testing.assert_allclose(from_files, whole, rtol=0, atol=1e-6)


def test_the_streaming_scorer_refuses_vectors_out_of_order(small_blocks):
    streamed = scoring.StreamingScorer(
        MLPClassifier(3).eval(), "c.pth", [random_vectors(10, 1, 0)], 10
    )
    streamed.add(0, random_vectors(4, 2, 1))
    with pytest.raises(ValueError, match="vectors from row 5, expected them from row 4"):
        streamed.add(5, random_vectors(4, 2, 1))


def test_an_unfinished_stream_is_an_error(small_blocks):
    streamed = scoring.StreamingScorer(
        MLPClassifier(3).eval(), "c.pth", [random_vectors(10, 1, 0)], 10
    )
    streamed.add(0, random_vectors(4, 2, 1))
    with pytest.raises(ValueError, match="vectors of 4 of 10 frames arrived"):
        streamed.result()


def overflowing(width):
    """A classifier whose weights are finite (its file passes the loader's checks) but whose
    scores are not: every frame's two logits overflow to infinity, which softmax makes NaN."""
    model = MLPClassifier(width).eval()
    with torch.no_grad():
        model.hidden_layer.weight.zero_()
        model.hidden_layer.bias.fill_(1)
        model.output_layer.weight.fill_(1e38)
    return model


def test_nan_scores_stop_the_job_and_the_stage_naming_the_classifier(tmp_path, small_blocks):
    dna, protein = random_vectors(20, 1, 0), random_vectors(20, 2, 1)
    message = (
        r"^damaged\.pth scores frame \d+ of the shard \(in its files' order\) NaN or infinite; "
        r"its features there are finite, so the classifier is damaged"
    )
    streamed = scoring.StreamingScorer(overflowing(3), "damaged.pth", [dna], 20)
    streamed.add(0, protein)
    with pytest.raises(scoring.NonFiniteScores, match=message):
        streamed.result()
    with embedding_writer(tmp_path / "p.h5", range(20), ["f"] * 20) as out:
        out.vectors(2, np.float32)
        out.write(0, protein)
    with open_embeddings(tmp_path / "p.h5") as stored, pytest.raises(ValueError, match=message):
        scoring.score_files(overflowing(2), [stored["embedding"]], "damaged.pth")


def test_nan_features_are_named_as_the_cause_of_nan_scores(small_blocks):
    protein = random_vectors(20, 2, 1)
    protein[9, 1] = np.nan
    streamed = scoring.StreamingScorer(
        MLPClassifier(3).eval(), "c.pth", [random_vectors(20, 1, 0)], 20
    )
    streamed.add(0, protein)
    with pytest.raises(ValueError, match=r"^c\.pth scores frame 9 .*; so are its features there"):
        streamed.result()


def shard_files(run, tmp_path, shard="shard_0001"):
    """Copies of one shard's two embedding files from the demo run."""
    copies = []
    for kind in ("dnabert_s", "esm2"):
        copies.append(tmp_path / f"{shard}.{kind}.h5")
        shutil.copy(run / "embeddings" / f"{shard}.{kind}.h5", copies[-1])
    return copies


def test_the_stage_uses_the_jobs_scores_only_for_the_classifier_they_came_from(
    demo_run, demo_models, tmp_path, caplog
):
    dnabert_s, esm2 = shard_files(demo_run, tmp_path)
    classifier = demo_models["classifier_500"]
    ordinals = read_embeddings(esm2)[0]  # the job's order, longest first
    first = int(ordinals.min())
    with h5py.File(esm2, "r") as h5:
        assert h5.attrs[SCORED_WITH] == classifier_digest(classifier)
        assert h5["scores"].shape == (h5.attrs["rows"], 2)
    caplog.set_level(logging.INFO)
    stored = ShardScorer(classifier).scores([dnabert_s, esm2], first)
    assert "computed stored by the embedding job" in caplog.text

    with h5py.File(esm2, "a") as h5:  # as if the job had scored with another classifier
        h5.attrs[SCORED_WITH] = "0" * 64
    caplog.clear()
    here = ShardScorer(classifier).scores([dnabert_s, esm2], first)
    assert "(computed here)" in caplog.text
    np.testing.assert_array_equal(here, stored)
    # in ordinal order, not the file's
    with h5py.File(esm2, "r") as h5:
        np.testing.assert_array_equal(stored[ordinals - first], h5["scores"][:])

    other = write_pickled_classifier(tmp_path / "other.pth", 48 + 64, seed=5)
    assert not np.array_equal(ShardScorer(other).scores([dnabert_s, esm2], first), stored)


@pytest.mark.parametrize("model", ["dnabert_s", "esm2"])
def test_a_classifier_of_one_models_features_embeds_and_reads_that_model_alone(
    demo_run, demo_models, tmp_path, caplog, model
):
    width = read_attrs(demo_run / "embeddings" / f"shard_0000.{model}.h5")["dim"]
    torch.manual_seed(4)
    classifier = tmp_path / f"{model}.safetensors"
    save_classifier(MLPClassifier(width).eval(), classifier, models=(model,))
    assert classifier_models(classifier) == (model,)
    frames, manifest = demo_run / "shards" / "frames.tsv", demo_run / "shards" / "manifest.tsv"
    h5 = {model: tmp_path / f"shard_0000.{model}.h5"}
    stats = embed_shard(
        frames, manifest, "shard_0000", h5, demo_models, "cpu", classifier_path=classifier
    )
    assert list(stats) == [model] and list(tmp_path.glob("*.h5")) == [h5[model]]
    caplog.set_level(logging.INFO)
    stored = ShardScorer(classifier).scores([h5[model]], 0)
    assert "computed stored by the embedding job" in caplog.text
    with h5py.File(h5[model], "a") as out:  # as if the job had scored with another classifier
        out.attrs[SCORED_WITH] = "0" * 64
    np.testing.assert_array_equal(ShardScorer(classifier).scores([h5[model]], 0), stored)
    # the same vectors as the job that embeds with both models computes
    both = read_embeddings(demo_run / "embeddings" / f"shard_0000.{model}.h5")
    alone = read_embeddings(h5[model])
    order = np.argsort(alone[0])
    np.testing.assert_allclose(alone[2][order], both[2][np.argsort(both[0])], rtol=0, atol=1e-5)


def test_a_classifier_names_its_models_in_features_order(tmp_path):
    with pytest.raises(ValueError, match="in that order"):
        save_classifier(MLPClassifier(4), tmp_path / "c.safetensors", models=("esm2", "dnabert_s"))
    assert classifier_models(tmp_path / "absent.safetensors") == ("dnabert_s", "esm2")
    assert classifier_models(write_pickled_classifier(tmp_path / "o.pth", 4)) == (
        "dnabert_s",
        "esm2",
    )


def demo_widths(run):
    return sum(read_attrs(run / "embeddings" / f"shard_0000.{kind}.h5")["dim"] for kind in KINDS)


KINDS = ("dnabert_s", "esm2")


def nan_weight(width):
    model = MLPClassifier(width).eval()
    with torch.no_grad():
        model.output_layer.weight[1, 3] = float("nan")
    return model


@pytest.mark.parametrize(
    "damaged, message",
    [
        (nan_weight, r"^refusing to load {}: its output_layer\.weight holds NaN or infinite"),
        (overflowing, r"^{} scores frame \d+ of the shard .* the classifier is damaged"),
    ],
    ids=["NaN weight", "overflowing"],
)
def test_a_sample_classified_with_a_damaged_classifier_stops_naming_it(
    demo_run, demo_models, tmp_path, damaged, message
):
    """Not in the aggregation, inside ruptures (`min() arg is an empty sequence`), as every
    frame scored NaN and was called `others`."""
    classifier = tmp_path / "damaged.safetensors"
    save_classifier(damaged(demo_widths(demo_run)), classifier)
    models = demo_models | {"classifier_500": classifier}
    with pytest.raises(ValueError, match=message.format(re.escape(str(classifier)))):
        run_sample(DEMO_FA, models, tmp_path / "run", shards=1)


def test_the_stage_stops_naming_a_classifier_whose_scores_are_nan(demo_run, tmp_path):
    """Rather than call every frame `others` and fail in the aggregation (ruptures: `min() arg
    is an empty sequence`)."""
    classifier = tmp_path / "overflowing.safetensors"
    save_classifier(overflowing(demo_widths(demo_run)), classifier)
    files = shard_files(demo_run, tmp_path)
    first = int(read_embeddings(files[-1])[0].min())
    with pytest.raises(ValueError, match=rf"^{re.escape(str(classifier))} scores frame \d+ "):
        ShardScorer(classifier).scores(files, first)


def test_stored_scores_that_are_not_finite_are_computed_again(demo_run, demo_models, tmp_path):
    classifier = demo_models["classifier_500"]
    files = shard_files(demo_run, tmp_path)
    first = int(read_embeddings(files[-1])[0].min())
    clean = ShardScorer(classifier).scores(files, first)
    with h5py.File(files[-1], "a") as h5:  # as an earlier version stored a damaged classifier's
        h5["scores"][3] = np.nan
    np.testing.assert_array_equal(ShardScorer(classifier).scores(files, first), clean)


def test_an_embedding_job_keeps_its_vectors_where_the_classifier_scores_nan(
    demo_run, demo_models, tmp_path, caplog
):
    """The classification stage stops on the classifier; the job's embeddings are kept."""
    classifier = tmp_path / "overflowing.safetensors"
    save_classifier(overflowing(demo_widths(demo_run)), classifier)
    frames, manifest = demo_run / "shards" / "frames.tsv", demo_run / "shards" / "manifest.tsv"
    h5 = {kind: tmp_path / f"shard_0000.{kind}.h5" for kind in KINDS}
    embed_shard(frames, manifest, "shard_0000", h5, demo_models, "cpu", classifier_path=classifier)
    assert f"not storing this job's scores (the classification stage will stop): {classifier}" in (
        caplog.text
    )
    with h5py.File(h5["esm2"], "r") as out:
        assert "scores" not in out and SCORED_WITH not in out.attrs
    np.testing.assert_array_equal(
        read_embeddings(h5["esm2"])[2],
        read_embeddings(demo_run / "embeddings" / "shard_0000.esm2.h5")[2],
    )
    with pytest.raises(ValueError, match=r"the classifier is damaged"):
        ShardScorer(classifier).scores(list(h5.values()), 0)
