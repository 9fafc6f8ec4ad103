"""A training run's library layer on the demo run's embedding files, labelled virus where the
frame comes from an NC_ record: the training matrix, a classifier trained with both models' and
with DNABERT-S's features alone, its header (metadata, digest, held-out metrics, calibration),
its bytes repeated by its seed, and its evaluation on labelled shards."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from virnucpro.calls.calibration import Calibration, fit_calibration
from virnucpro.calls.scoring import check_width
from virnucpro.io.classifier_header import classifier_metadata, classifier_models
from virnucpro.io.damage import DamagedFile
from virnucpro.io.h5store import read_embeddings
from virnucpro.io.tables import read_tsv
from virnucpro.models.checkpoints import load_classifier
from virnucpro.models.classifier import MLPClassifier, save_classifier, scores
from virnucpro.training.fit import split_indices
from virnucpro.training.run import (
    TrainingSet,
    evaluate_classifier,
    in_spec_order,
    read_labels,
    sets_matrix,
    train_classifier,
    training_matrix,
)

# With the demo's 23 frames these seeds hold out 2 frames, one of each class, and stop early
# within a dozen epochs; seed 42 (the original's) holds out two host frames.
SEED, OTHER_SEED, ONE_CLASS_SEED = 2, 3, 42
BOTH, DNABERT_S = ("dnabert_s", "esm2"), ("dnabert_s",)


# the fits are tiny: one thread runs them faster than several contending ones
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(demo_run):
    """{models: each shard's embedding files of those models}."""
    embeddings = demo_run / "embeddings"
    return {
        models: [[embeddings / f"shard_000{n}.{m}.h5" for m in models] for n in range(3)]
        for models in (BOTH, DNABERT_S)
    }


@pytest.fixture(scope="module")
def labels_tsv(shards, tmp_path_factory):
    frame_ids = [f for files in shards[BOTH] for f in read_embeddings(files[0])[1]]
    rows = [f"{f}\t{'virus' if f.startswith('NC_') else 'other'}\n" for f in frame_ids]
    path = tmp_path_factory.mktemp("labels") / "labels.tsv"
    path.write_text("frame_id\tlabel\n" + "".join(rows))
    return path


def train(shards, labels_tsv, out, models=BOTH, seed=SEED, name="classifier"):
    """train_classifier's outputs in `out`: (classifier, history, metrics) paths."""
    paths = (out / f"{name}.safetensors", out / f"{name}.history.tsv", out / f"{name}.metrics.tsv")
    sets = [TrainingSet(shards[models], labels_tsv, "virus", "demo.fa")]
    train_classifier(sets, models, 500, seed, False, *paths)
    return paths


@pytest.fixture(scope="module")
def trained(shards, labels_tsv, tmp_path_factory):
    """{models: train()'s paths} at SEED."""
    out = tmp_path_factory.mktemp("trained")
    return {models: train(shards, labels_tsv, out, models, name=models[-1]) for models in shards}


def test_the_matrix_holds_the_frames_by_ordinal_their_vectors_side_by_side(shards, labels_tsv):
    matrix = training_matrix(shards[BOTH][::-1], read_labels(labels_tsv))  # shards in any order
    files = [[read_embeddings(path) for path in shard] for shard in shards[BOTH]]
    ordinals = np.concatenate([dnabert_s[0] for dnabert_s, _ in files])
    order = np.argsort(ordinals)
    assert matrix.ordinals.tolist() == sorted(ordinals.tolist())
    assert matrix.frame_ids == [[f for d, _ in files for f in d[1]][i] for i in order]
    side_by_side = np.concatenate([np.hstack([d[2], e[2]]) for d, e in files])[order]
    assert matrix.features.dtype == np.float32
    assert np.array_equal(matrix.features, side_by_side)
    assert matrix.labels.tolist() == [int(f.startswith("NC_")) for f in matrix.frame_ids]
    assert 0 < matrix.labels.sum() < len(matrix.labels)
    assert matrix.widths == (48, 64)
    assert matrix.model_names == ("DNABERT-S-demo", "esm2_t4_demo")

    alone = training_matrix(shards[DNABERT_S], read_labels(labels_tsv))
    assert alone.widths == (48,) and np.array_equal(alone.features, side_by_side[:, :48])


def test_every_frame_needs_one_label(shards, labels_tsv, tmp_path):
    labels = read_labels(labels_tsv)
    frame_id = next(iter(labels))
    del labels[frame_id]
    with pytest.raises(ValueError, match=f"1 frames have no label, such as \\['{frame_id}'\\]"):
        training_matrix(shards[BOTH], labels)
    (tmp_path / "bad.tsv").write_text(f"frame_id\tlabel\n{frame_id}\tphage\n")
    with pytest.raises(ValueError, match="line 2: label 'phage' is not one of"):
        read_labels(tmp_path / "bad.tsv")
    (tmp_path / "twice.tsv").write_text(f"frame_id\tlabel\n{frame_id}\tvirus\n{frame_id}\tother\n")
    with pytest.raises(ValueError, match="line 3: frame .* labelled twice"):
        read_labels(tmp_path / "twice.tsv")
    with pytest.raises(ValueError, match="ordinal occurs twice"):
        training_matrix(shards[BOTH] + shards[BOTH][:1], read_labels(labels_tsv))


def test_a_labels_table_cut_short_is_named_by_training_and_evaluation(
    trained, shards, labels_tsv, tmp_path
):
    lines = labels_tsv.read_text().splitlines(keepends=True)
    cut = tmp_path / "labels.tsv"
    cut.write_text("".join(lines[:-2]))  # at a line end: the rows left look whole
    lacks = rf"{cut} is damaged: 2 frames have no label, such as .*: it lacks rows of its set's"
    with pytest.raises(DamagedFile, match=lacks):
        sets_matrix([TrainingSet(shards[BOTH], cut, "virus", "a.fa")])
    with pytest.raises(DamagedFile, match=lacks):
        evaluate_classifier([(shards[BOTH], cut)], trained[BOTH][0], tmp_path / "m.tsv", None)
    cut.write_text("".join(lines[:-1]) + lines[-1][:4])  # inside a line
    with pytest.raises(DamagedFile, match=f"{cut} is damaged: its last line is cut short"):
        read_labels(cut)
    cut.write_text("".join(lines[:-1]) + lines[-1].split("\t")[0] + "\n")
    with pytest.raises(DamagedFile, match=f"line {len(lines)} does not hold the 2 fields"):
        read_labels(cut)


@pytest.mark.parametrize("models", [BOTH, DNABERT_S], ids=["both", "dnabert_s"])
def test_the_classifier_file_says_what_made_it(trained, shards, labels_tsv, models):
    classifier, history_tsv, metrics_tsv = trained[models]
    widths = {BOTH: (48, 64), DNABERT_S: (48,)}[models]
    assert load_classifier(classifier).input_dim == sum(widths)
    assert classifier_models(classifier) == models
    metadata = classifier_metadata(classifier)
    assert metadata["models"] == ",".join(models)
    assert metadata["widths"] == ",".join(map(str, widths))
    assert metadata["chunk_size"] == "500"
    assert metadata["seed"] == str(SEED) and metadata["legacy"] == "false"
    assert metadata["random_encoders"] == "true"  # the demo's models
    names = {"dnabert_s": "DNABERT-S-demo", "esm2": "esm2_t4_demo"}
    assert json.loads(metadata["embedding_models"]) == {m: names[m] for m in models}
    # the same frames and labels whatever the models: the same digest
    assert (
        metadata["training_data_sha256"]
        == classifier_metadata(trained[BOTH][0])["training_data_sha256"]
    )
    assert len(metadata["training_data_sha256"]) == 64

    _, test = split_indices(23, SEED)
    metrics = json.loads(metadata["metrics"])
    assert metrics["n"] == len(test) == 2 and metrics["threshold"] == 0.5
    table = {(row.scope, row.metric): row.value for row in read_tsv(metrics_tsv)}
    assert table[("all", "n")] == "2" and float(table[("all", "accuracy")]) == metrics["accuracy"]
    history = list(read_tsv(history_tsv))
    assert history[0]._fields[:3] == ("epoch", "train_loss", "loss")
    assert [int(row.epoch) for row in history] == list(range(1, len(history) + 1))


def test_the_calibration_is_that_of_the_held_out_scores_exactly(trained, shards, labels_tsv):
    classifier = trained[BOTH][0]
    matrix = training_matrix(shards[BOTH], read_labels(labels_tsv))
    _, test = split_indices(len(matrix.labels), SEED)
    held_out = scores(load_classifier(classifier), torch.from_numpy(matrix.features[test]))
    expected = fit_calibration(held_out[:, 1].numpy(), matrix.labels[test])
    stored = Calibration.from_json(classifier_metadata(classifier)["calibration"])
    assert stored.scores.tobytes() == expected.scores.tobytes()
    assert stored.probabilities.tobytes() == expected.probabilities.tobytes()


def test_a_held_out_split_of_one_class_leaves_the_calibration_out(shards, labels_tsv, tmp_path):
    classifier, _, _ = train(shards, labels_tsv, tmp_path, seed=ONE_CLASS_SEED)
    metadata = classifier_metadata(classifier)
    assert "calibration" not in metadata and metadata["seed"] == "42"
    assert json.loads(metadata["metrics"])["positives"] == 0


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others(
    trained, shards, labels_tsv, tmp_path
):
    again, _, _ = train(shards, labels_tsv, tmp_path, name="again")
    other, _, _ = train(shards, labels_tsv, tmp_path, seed=OTHER_SEED, name="other")
    assert again.read_bytes() == trained[BOTH][0].read_bytes()
    assert other.read_bytes() != trained[BOTH][0].read_bytes()


def test_a_changed_label_changes_the_digest(trained, shards, labels_tsv, tmp_path):
    header, first, *rest = labels_tsv.read_text().splitlines(keepends=True)
    frame_id, label = first.rstrip("\n").split("\t")
    flipped = f"{frame_id}\t{'other' if label == 'virus' else 'virus'}\n"
    changed = tmp_path / "labels.tsv"
    changed.write_text("".join([header, flipped, *rest]))
    classifier, _, _ = train(shards, changed, tmp_path)
    digest = classifier_metadata(classifier)["training_data_sha256"]
    assert digest != classifier_metadata(trained[BOTH][0])["training_data_sha256"]


def test_evaluation_writes_metrics_and_a_figure(trained, shards, labels_tsv, tmp_path):
    metrics_tsv, figure = tmp_path / "metrics.tsv", tmp_path / "figure.svg"
    header, *rows = labels_tsv.read_text().splitlines()
    lengths = ["length"] + [100] * 3 + [300] * (len(rows) - 3)  # 3 frames of short chunks
    with_lengths = tmp_path / "labels.tsv"
    with_lengths.write_text(
        "".join(f"{row}\t{n}\n" for row, n in zip([header, *rows], lengths, strict=True))
    )
    metrics = evaluate_classifier(
        [(shards[BOTH], with_lengths)], trained[BOTH][0], metrics_tsv, figure, by_length=True
    )
    assert metrics["n"] == 23 and metrics["positives"] == 12
    table = {(row.scope, row.metric): row.value for row in read_tsv(metrics_tsv)}
    assert table[("all", "n")] == "23" and table[("length [300, 500)", "n")] == "20"
    assert table[("length [0, 300)", "n")] == "3"
    assert ET.parse(figure).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert "calibrated" in figure.read_text()  # the classifier holds a calibration


def test_a_classifier_of_dnabert_s_features_reads_those_files_alone(
    trained, shards, labels_tsv, tmp_path
):
    classifier = trained[DNABERT_S][0]
    metrics = evaluate_classifier(
        [(shards[DNABERT_S], labels_tsv)], classifier, tmp_path / "m.tsv", tmp_path / "f.svg"
    )
    assert metrics["n"] == 23
    esm2 = shards[BOTH][0][1]
    with pytest.raises(ValueError, match=f"takes 48 features, .*64 \\({esm2}\\)"):
        evaluate_classifier(
            [(shards[BOTH], labels_tsv)], classifier, tmp_path / "m.tsv", tmp_path / "f.svg"
        )


def test_metadata_are_strings_beside_format_and_models(tmp_path, demo_models):
    path = tmp_path / "c.safetensors"
    save_classifier(MLPClassifier(4).eval(), path, metadata={"seed": "7"})
    assert classifier_metadata(path) == {
        "format": "virnucpro-mlp",
        "models": "dnabert_s,esm2",
        "seed": "7",
    }
    with pytest.raises(ValueError, match="strings"):
        save_classifier(MLPClassifier(4), path, metadata={"seed": 7})
    with pytest.raises(ValueError, match="writes \\['models'\\] itself"):
        save_classifier(MLPClassifier(4), path, metadata={"models": "esm2"})
    assert classifier_metadata(demo_models["classifier_500"]) == {}  # the original's .pth


def test_sets_are_taken_virus_first_then_by_fasta_path():
    sets = [
        TrainingSet([], "o.tsv", "other", "b.fa"),
        TrainingSet([], "v2.tsv", "virus", "z.fa"),
        TrainingSet([], "o1.tsv", "other", "a.fa"),
        TrainingSet([], "v1.tsv", "virus", "c.fa"),
    ]
    assert [s.labels_tsv for s in in_spec_order(sets)] == ["v1.tsv", "v2.tsv", "o1.tsv", "o.tsv"]


def test_sets_numbering_frames_from_zero_each_make_one_matrix(shards, labels_tsv):
    """Two sets whose ordinals both start at 0 (here the same shards twice): one set alone is
    refused a repeated ordinal, two sets are concatenated in the order given."""
    one = training_matrix(shards[BOTH], read_labels(labels_tsv))
    both = sets_matrix([TrainingSet(shards[BOTH], labels_tsv, "virus", "a.fa")] * 2)
    assert both.features.shape == (2 * len(one.labels), one.features.shape[1])
    np.testing.assert_array_equal(both.features[len(one.labels) :], one.features)
    np.testing.assert_array_equal(both.ordinals, np.concatenate([one.ordinals] * 2))
    assert both.frame_ids == one.frame_ids * 2
    with pytest.raises(ValueError, match="ordinal occurs twice"):
        training_matrix(shards[BOTH] * 2, read_labels(labels_tsv))


def test_a_trained_classifier_refuses_features_of_other_widths(trained, caplog):
    """Its header's widths are checked one by one: the sum alone would take the models' widths
    swapped, as a classifier of other models of the same total width would be."""
    path = trained[BOTH][0]
    model = load_classifier(path)
    widths = [int(w) for w in classifier_metadata(path)["widths"].split(",")]
    names = list(json.loads(classifier_metadata(path)["embedding_models"]).values())
    files = ["a.dnabert_s.h5", "a.esm2.h5"]
    check_width(model, widths, path, files, names)  # its own models: accepted
    with pytest.raises(ValueError, match=r"was trained on features of .* point models\.esm2"):
        check_width(model, widths[::-1], path, files)
    with pytest.raises(ValueError, match="does not belong to these models"):
        check_width(model, [widths[0], widths[1] + 1], path, files)
    check_width(model, widths, path, files, ["moved-dnabert", names[1]])
    assert "the same models if only their files were renamed" in caplog.text
