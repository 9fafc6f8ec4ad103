"""The run's plan from a config, sheet rows and the facts of the machine and the inputs, built
without Snakemake (virnucpro.plan): samples, shards, targets, classifiers and GPUs."""

import pytest

from virnucpro.errors import InputError
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.plan import TRAINED, chosen_gpus, make_plan

BOTH = tuple(EMBEDDING_MODELS)


def config(shards="auto", sheet=None, compare_with=()):
    return {
        "samples": "config/samples.tsv",
        "models": {"classifier_300": "c300.pth", "classifier_500": "c500.pth"},
        "embedding": {"shards": shards},
        "training": {
            "sheet": sheet,
            "chunk_size": 400,
            "models": list(BOTH),
            "compare_with": list(compare_with),
        },
    }


def row(chunk_size=500, fasta="a.fa", **extra):
    return {"fasta": fasta, "chunk_size": chunk_size, "chunking": "overlap", **extra}


def plan(cfg, samples, training_rows=None, headers=None, checked=None):
    """make_plan with classifier headers {path: models} (both models where not named) and
    shards one per kilobyte of a row's `size`."""
    headers = headers or {}
    checked = [] if checked is None else checked
    return make_plan(
        cfg,
        samples,
        training_rows or {},
        check_classifier=lambda sample, r, path: checked.append((sample, path)),
        planned_models=lambda path: headers.get(path, BOTH),
        classifier_models=lambda path: headers.get(path, BOTH),
        shard_count=lambda r, models: r.get("size", 1000) // 1000 * len(models),
    )


def test_the_gpus_come_from_the_config_or_else_the_machine_and_none_on_a_cluster():
    def machine():
        raise AssertionError("the machine was asked")

    assert chosen_gpus([0, 2], True, machine) == ["0", "2"]
    assert chosen_gpus("auto", False, machine) == []
    assert chosen_gpus("auto", True, lambda: ["1"]) == ["1"]


def test_each_sample_takes_its_rows_classifier_or_the_published_one_of_its_chunk_size():
    checked = []
    p = plan(
        config(),
        {"a": row(500), "b": row(300), "c": row(700, classifier="mine.safetensors")},
        checked=checked,
    )
    assert p.classifiers == {"a": "c500.pth", "b": "c300.pth", "c": "mine.safetensors"}
    assert checked == list(p.classifiers.items())
    with pytest.raises(InputError, match="no published classifier is for 700 bp chunks"):
        plan(config(), {"c": row(700)})


def test_a_samples_shards_follow_from_its_own_input_and_models_alone():
    headers = {"dna.safetensors": ("dnabert_s",)}
    alone = plan(config(), {"a": row(size=3000)}, headers=headers)
    p = plan(
        config(),
        {"a": row(size=3000), "b": row(classifier="dna.safetensors", size=3000)},
        headers=headers,
    )
    assert p.shards["a"] == alone.shards["a"] == [f"shard_{i:04d}" for i in range(6)]
    assert p.shards["b"] == [f"shard_{i:04d}" for i in range(3)]
    assert plan(config(shards=2), {"a": row(size=3000)}).shards["a"] == [
        "shard_0000",
        "shard_0001",
    ]


def test_the_targets_are_every_samples_results_and_embeddings_and_the_table():
    p = plan(
        config(shards=1, sheet="training.tsv"),
        {"a": row(classifier="dna.safetensors")},
        {"virus": {"fasta": "v.fa", "role": "train", "label": "virus"}},
        headers={"dna.safetensors": ("dnabert_s",)},
    )
    targets = p.targets()
    assert "results/a/summary.txt" in targets and "results/samples.tsv" in targets
    assert [t for t in targets if "/embeddings/" in t] == [
        "results/a/embeddings/shard_0000.dnabert_s.h5"
    ]
    assert not [t for t in targets if t.startswith("results/training/")]
    # a training set is embedded with the models the classifier is trained on
    assert p.embedding_files("training/virus") == [
        f"results/training/virus/embeddings/shard_0000.{model}.h5" for model in BOTH
    ]


def test_training_sets_are_pseudo_samples_cut_at_the_training_chunk_size():
    rows = {
        "virus": {"fasta": "v.fa", "role": "train", "label": "virus"},
        "held": {"fasta": "h.fa", "role": "evaluate", "label": "virus"},
    }
    p = plan(config(sheet="training.tsv"), {}, rows)
    assert p.training_sets["training/virus"]["chunk_size"] == 400
    assert p.sets_of("train") == ["training/virus"]
    assert p.sets_of("evaluate") == ["training/held"]
    with pytest.raises(InputError, match="the sample `training` would share"):
        plan(config(sheet="training.tsv"), {"training": row()}, rows)


def test_a_run_needs_a_sample_or_a_training_sheet():
    with pytest.raises(InputError, match="holds its header and no sample"):
        plan(config(), {})


def test_the_classifiers_evaluated_are_the_trained_one_and_those_compared_with():
    p = plan(config(compare_with=["x/dna.safetensors"]), {"a": row()})
    assert list(p.evaluated) == [TRAINED, "dna"]
    with pytest.raises(InputError, match="each classifier is named by its file stem"):
        plan(config(compare_with=["x/dna.pth", "y/dna.pth"]), {"a": row()})
    cfg = config(compare_with=["both.pth"])
    cfg["training"]["models"] = ["dnabert_s"]
    with pytest.raises(InputError, match="add \\['esm2'\\] to training.models"):
        plan(cfg, {"a": row()})


def test_a_classifier_is_evaluated_on_its_own_models_features_of_each_shard():
    rows = {"held": {"fasta": "h.fa", "role": "evaluate", "label": "virus"}}
    p = plan(
        config(shards=2, sheet="training.tsv", compare_with=["x/dna.safetensors"]),
        {},
        rows,
        headers={"x/dna.safetensors": ("dnabert_s",)},
    )
    [fields] = p.set_fields("evaluate")
    assert fields["labels_tsv"] == "results/training/held/labels.tsv"
    assert fields["shards"] == [
        [f"results/training/held/embeddings/shard_000{i}.{model}.h5" for model in BOTH]
        for i in range(2)
    ]
    [dna] = p.evaluation_sets("dna")
    assert dna["shards"] == [
        [f"results/training/held/embeddings/shard_000{i}.dnabert_s.h5"] for i in range(2)
    ]
    assert p.evaluation_sets(TRAINED) == [fields]
