"""The run's plan: from the config, the sheets' rows and the facts of the machine and the inputs
(passed in), which samples and training sets are run, each one's classifier, embedding models
and shards, the classifiers evaluated, the GPUs a local run leases, and the files `all` makes.
workflow/rules/common.smk reads the config and sheets, asks the machine, and builds this; the
rules only read it, and tests build it without Snakemake."""

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .io.shards import shard_name
from .planning.classifier_choice import TRAINED_CLASSIFIER, sample_classifier

# Each sample's files that `all` asks for, in results/{sample}/
SAMPLE_RESULTS = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "records.tsv",
    "chunks.tsv",
    "regions.tsv",
    "virus.fna",
    "virus_regions.fna",
    "summary.txt",
    "calls.html",
    "plots/score_distribution.svg",
    "plots/length_vs_score.svg",
    "plots/score_tracks.svg",
)
# The classifiers `evaluate` measures on the evaluate sets, by their {classifier} name in
# results/training/evaluation/: the one trained here, and each of training.compare_with.
TRAINED = "trained"


def chosen_gpus(setting, local, machine):
    """The GPUs local embedding jobs lease: embedding.gpus (`setting`) unless `auto`, else the
    ones `machine()` shows; none for a cluster run (`local` false), whose jobs get theirs from
    the cluster."""
    if not local:
        return []
    if setting != "auto":
        return [str(device) for device in setting]
    return machine()


def names_pattern(names):
    """A wildcard pattern matching exactly `names`, or nothing."""
    return "|".join(map(re.escape, names)) or "(?!)"  # (?!): matches no name


def training_sets(rows, samples, training):
    """{pseudo-sample `training/{set}`: row} of the training sheet's `rows`: each set is
    embedded as a sample of its own (results/training/{set}/), by the prediction's rules, and
    cut as the prediction cuts a sample of training.chunk_size (virnucpro.training.frames)."""
    if training["sheet"] is not None and "training" in samples:
        raise InputError(
            "the sample `training` would share results/training/ with the training run: "
            "rename it in the sample sheet"
        )
    chunking = {"chunk_size": training["chunk_size"], "chunking": "overlap"}
    return {f"training/{name}": {**row, **chunking} for name, row in rows.items()}


def evaluated_classifiers(training, classifier_models):
    """{name: {"path", "models"}} of the classifiers to evaluate: `trained`, and each of
    training.compare_with named by its file stem, with the embedding models it takes
    (`classifier_models(path)`, from its header). Refused where two share a name, or where one
    takes a model the evaluate sets are not embedded with."""
    embedded = tuple(training["models"])
    classifiers = {TRAINED: {"path": TRAINED_CLASSIFIER, "models": embedded}}
    for path in training["compare_with"]:
        name, models = Path(path).stem, classifier_models(path)
        if name in classifiers:
            raise InputError(
                f"training.compare_with: {path} would be evaluated as {name!r}, as is "
                f"{classifiers[name]['path']}: each classifier is named by its file stem in "
                "results/training/evaluation/, so give each a file name of its own"
            )
        missing = [model for model in models if model not in embedded]
        if missing:
            raise InputError(
                f"training.compare_with: {path} takes the features of {list(models)}, the "
                f"evaluate sets are embedded with training.models {list(embedded)}: add "
                f"{missing} to training.models to evaluate it"
            )
        classifiers[name] = {"path": path, "models": models}
    return classifiers


@dataclass(frozen=True)
class Plan:
    samples: dict  # {sample: sheet row}
    training_sets: dict  # {`training/{set}`: training sheet row}, see training_sets
    classifiers: dict  # {sample: its classifier file}; a training set scores nothing
    models: dict  # {sample or set: the embedding models of its classifier, in features order}
    shards: dict  # {sample or set: its shard names}
    evaluated: dict  # evaluated_classifiers

    def sets_of(self, role):
        """The pseudo-samples of the training sets of one role (train or evaluate)."""
        return [name for name, row in self.training_sets.items() if row["role"] == role]

    def embedding_files(self, sample, shard=None):
        """The embedding files of a sample (or of one of its shards), shard by shard, each
        shard's in features order."""
        return [
            f"results/{sample}/embeddings/{name}.{model}.h5"
            for name in (self.shards[sample] if shard is None else [shard])
            for model in self.models[sample]
        ]

    def set_fields(self, role):
        """training.run.TrainingSet fields of each set of a role: its embedding files shard by
        shard (each shard's in features order), its labels table, its label and FASTA."""
        sets = []
        for name in self.sets_of(role):
            files, per_shard = self.embedding_files(name), len(self.models[name])
            row = self.training_sets[name]
            sets.append(
                {
                    "shards": [files[i : i + per_shard] for i in range(0, len(files), per_shard)],
                    "labels_tsv": f"results/{name}/labels.tsv",
                    "label": row["label"],
                    "fasta": row["fasta"],
                }
            )
        return sets

    def evaluation_sets(self, classifier):
        """set_fields of the evaluate sets, each shard's files cut to those of the models of
        the evaluated `classifier`, in its features order."""
        embedded = self.evaluated[TRAINED]["models"]  # those the training sets are embedded with
        kept = [embedded.index(model) for model in self.evaluated[classifier]["models"]]
        return [
            {**s, "shards": [[shard[i] for i in kept] for shard in s["shards"]]}
            for s in self.set_fields("evaluate")
        ]

    def targets(self):
        """Every sample's results and the table of all samples, the per-shard embeddings
        included: a shard file that goes missing is then remade, with only what depends on it.
        The evaluation's files are added by the workflow's `all`, from its rules' outputs,
        where the training sheet has evaluate sets."""
        return [
            *(f"results/{sample}/{name}" for sample in self.samples for name in SAMPLE_RESULTS),
            *(path for sample in self.samples for path in self.embedding_files(sample)),
            "results/samples.tsv",
        ]


def make_plan(
    config,
    samples,
    training_rows,
    *,
    check_classifier,
    planned_models,
    classifier_models,
    shard_count,
):
    """The Plan of a run of `config`, its sample sheet's rows `samples` and training sheet's
    `training_rows` (none without one). The facts of the input files come from functions:
    `check_classifier(sample, row, classifier)` refuses a classifier not for the sample's chunk
    size; `planned_models(classifier)` are the embedding models a sample's classifier takes
    (for the classifier the run trains, training.models), `classifier_models(path)` those a
    file's header names; `shard_count(row, models)` the shards of a sample or set under
    `embedding.shards: auto`."""
    training = config["training"]
    if not samples and training["sheet"] is None:
        raise InputError(
            f"sample sheet {config['samples']}: it holds its header and no sample, so there is "
            "nothing to run: add a line for each sample (config/README.md), or name a training "
            "sheet (training.sheet) to train a classifier without samples"
        )
    sets = training_sets(training_rows, samples, training)
    classifiers = {
        sample: sample_classifier(sample, row, config["models"]) for sample, row in samples.items()
    }
    for sample, path in classifiers.items():
        check_classifier(sample, samples[sample], path)
    # a classifier of DNABERT-S features alone runs no ESM-2 job; a training set is embedded
    # with the models the classifier is trained on
    models = {sample: planned_models(path) for sample, path in classifiers.items()} | {
        name: tuple(training["models"]) for name in sets
    }
    rows = samples | sets
    # a sample's shards follow from its own input, settings and models alone
    # (virnucpro.planning.sizing), so they stay the same when other samples, the GPUs or the
    # executor change
    count = config["embedding"]["shards"]
    shards = {
        name: [
            shard_name(i)
            for i in range(shard_count(rows[name], models[name]) if count == "auto" else count)
        ]
        for name in rows
    }
    evaluated = evaluated_classifiers(training, classifier_models)
    return Plan(samples, sets, classifiers, models, shards, evaluated)
