import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from virnucpro.classifier_choice import (
    TRAINED_CLASSIFIER,
    check_chunk_size,
    planned_models,
    sample_classifier as classifier_of_row,
)
from virnucpro.models.classifier_header import EMBEDDING_MODELS, classifier_models
from virnucpro.models.architectures import (
    DNABERT_S_CONFIG,
    DNABERT_S_TOKENIZER,
    DNABERT_S_WEIGHTS,
    dnabert_s_weights,
)
from virnucpro.errors import InputError
from virnucpro.lifeline import SNAKEMAKE_PID
from virnucpro.run_lock import AnotherRun, RunLock
from virnucpro.sample_sheet import read_sample_sheet
from virnucpro.scheduling import local_slots
from virnucpro.schema_check import load_schema, problems
from virnucpro.sharding import shard_name
from virnucpro.sizing import shards_for_sample

RUN_STARTED = time.time()  # a job log older than this is of an earlier run


def schema(name):
    """A schema of this workflow (workflow/schemas/), found from this file: where the workflow
    is a module of another, workflow.basedir is the importing workflow's directory."""
    return workflow.source_path(f"../schemas/{name}.schema.yaml")


def message_for_the_user(error):
    """The InputError or AnotherRun (a live run in this directory) among `error` and the
    exceptions it was raised from, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (InputError, AnotherRun)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class MessageAlone(logging.Filter):
    """Snakemake prints an error met while it plans or starts the run (a bad config, sheet or
    input, another run in this directory) with its location and this file's traceback lines
    under it; such an error's message says all a user needs (what is wrong, where, the fix), so
    it is printed alone."""

    def filter(self, record):
        error = message_for_the_user(sys.exception())  # what Snakemake is printing
        if error is not None and record.levelno >= logging.ERROR:
            record.msg, record.args = str(error), ()
        return True


logger.addFilter(MessageAlone())


# Every job ends with the Snakemake process that parsed this file and started it (in a cluster
# job, the Snakemake process that runs it there): see virnucpro/lifeline.py.
os.environ[SNAKEMAKE_PID] = str(os.getpid())

# One run at a time in a working directory (virnucpro/run_lock.py): the Snakemake that runs the
# jobs takes the run lock once it knows it will, before the first; a cluster job's Snakemake
# holds a share of the jobs lock. Any other start only says that a run holds the lock.
RUN_LOCK = RunLock(Path(".snakemake") / "virnucpro")
if not workflow.is_main_process:
    RUN_LOCK.hold_for_job()
elif other_run := RUN_LOCK.other_run():
    logger.warning(f"Note: {other_run}.")


onstart:
    RUN_LOCK.hold_for_run()


def check_config():
    """Every problem of the config at once, by key; then the schema's defaults filled in."""
    found = problems(config, load_schema(schema("config")))
    if found:
        files = ", ".join(map(str, workflow.configfiles))
        raise InputError(
            f"config (from {files} and any --config values):\n  "
            + "\n  ".join(found)
            + "\nCorrect these keys; config/README.md describes each."
        )
    validate(config, schema=schema("config"))


check_config()


def local_gpus():
    """The GPUs local embedding jobs are pinned to: embedding.gpus, or every GPU this machine
    shows (CUDA_VISIBLE_DEVICES if set, else nvidia-smi); none on a machine without GPUs.
    """
    chosen = config["embedding"]["gpus"]
    if chosen != "auto":
        return [str(device) for device in chosen]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device for device in visible.split(",") if device.strip()]
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return listed.stdout.split()


# A local run (no cluster executor) shares the machine's cores and GPUs between the jobs
# (virnucpro.scheduling): the `gpu` resource caps how many embedding jobs run, the job's lease
# (virnucpro.gpu_lease) picks its device, and one job computes on a device at a time.
def local_cores():
    """The cores a local run is given; None where Snakemake runs no job (--report, --lint)."""
    try:
        return workflow.cores
    except WorkflowError:
        return None


if workflow.nodes is None and local_cores() is None:
    logger.info(
        "No --cores given. To run on this machine: snakemake --profile profiles/local (every "
        "core; a failing sample does not stop the others), or give --cores N."
    )
config["embedding"]["gpus"] = local_gpus() if workflow.nodes is None else []
if workflow.nodes is None:
    SLOTS = local_slots(
        local_cores(), len(config["embedding"]["gpus"]), config["embedding"]["threads"]
    )
    if SLOTS.jobs_per_gpu and "gpu" not in workflow.global_resources:
        gpus = len(config["embedding"]["gpus"])
        workflow.register_resource("gpu", SLOTS.jobs_per_gpu * gpus)
    GPU_JOB_THREADS, CPU_STAGE_THREADS = SLOTS.gpu_job_threads, SLOTS.cpu_stage_threads
else:  # a cluster job gets the cores it asks for (profiles/slurm: set-threads)
    GPU_JOB_THREADS, CPU_STAGE_THREADS = config["embedding"]["threads"], 8

samples = read_sample_sheet(config["samples"], schema("samples"))
if not samples and config["training"]["sheet"] is None:
    raise InputError(
        f"sample sheet {config['samples']}: it holds its header and no sample, so there is "
        "nothing to run: add a line for each sample (config/README.md), or name a training "
        "sheet (training.sheet) to train a classifier without samples"
    )


def read_training_sheet():
    """{pseudo-sample `training/{set}`: row} of the training sheet; none without one. Each set
    is embedded as a sample of its own (results/training/{set}/), by the prediction's rules.
    """
    sheet = config["training"]["sheet"]
    if sheet is None:
        return {}
    if "training" in samples:
        raise InputError(
            "the sample `training` would share results/training/ with the training run: "
            "rename it in the sample sheet"
        )
    rows = read_sample_sheet(
        sheet,
        schema("training"),
        key="set",
        files=("fasta", "genbank"),
        config_key="training.sheet",
        sheet="training sheet",
    )
    # cut as the prediction cuts a sample of this chunk size (virnucpro.training_frames)
    chunking = {"chunk_size": config["training"]["chunk_size"], "chunking": "overlap"}
    return {f"training/{name}": {**row, **chunking} for name, row in rows.items()}


training_sets = read_training_sheet()


def training_sets_of(role):
    """The pseudo-samples of the training sets of one role (train or evaluate)."""
    return [name for name, row in training_sets.items() if row["role"] == role]


def names_pattern(names):
    """A wildcard pattern matching exactly `names`, or nothing."""
    return "|".join(map(re.escape, names)) or "(?!)"  # (?!): matches no name


wildcard_constraints:
    sample=names_pattern([*samples, *training_sets]),
    shard="shard_[0-9]{4}",


def intermediate_files(directory, chunks=True):
    """The original's intermediate files, {name: path} in `directory`, where the config keeps
    them (output.keep_intermediate); else none, and they are not written at all."""
    if not config["output"]["keep_intermediate"]:
        return {}
    names = {
        "chunks_fa": "chunks.fa",
        "nucleotide_fa": "identified_nucleotide.fa",
        "protein_faa": "identified_protein.faa",
    }
    return {
        key: f"{directory}/{name}"
        for key, name in names.items()
        if chunks or key != "chunks_fa"
    }


def sample_fasta(wildcards):
    return samples[wildcards.sample]["fasta"]


def sample_classifier(sample):
    return classifier_of_row(sample, samples[sample], config["models"])


def check_sample_classifiers():
    """Each sample's classifier is for its chunk size, as far as the header tells."""
    for sample, row in samples.items():
        classifier = sample_classifier(sample)
        check_chunk_size(sample, row["chunk_size"], classifier, config["training"])


check_sample_classifiers()


def classifier_for(wildcards):
    return sample_classifier(wildcards.sample)


# The classifier each sample's embedding jobs score their frames with while the vectors are in
# memory (virnucpro.embed); a training set's jobs score nothing. Read by the job, not an input or param of it, so that another
# classifier makes Snakemake re-score the stored embeddings instead of recomputing them.
config["embedding"]["scoring_classifier"] = {
    sample: sample_classifier(sample) for sample in samples
}


def dnabert_s_files():
    """The files of the DNABERT-S directory a job reads: the weights in either format, or
    before there are any, the pytorch_model.bin that download_model writes."""
    directory = Path(config["models"]["dnabert_s"])
    weights = dnabert_s_weights(directory) or directory / DNABERT_S_WEIGHTS[-1]
    return [directory / DNABERT_S_CONFIG, directory / DNABERT_S_TOKENIZER, weights]


# The embedding models each sample's classifier takes: a classifier of DNABERT-S features alone
# runs no ESM-2 job. Read from the classifier's header when the run is planned (or, for the
# classifier the run trains, from the training config). A training set is embedded with the
# models the classifier is trained on.
SAMPLE_MODELS = {
    sample: planned_models(sample_classifier(sample), config["training"])
    for sample in samples
} | {name: tuple(config["training"]["models"]) for name in training_sets}


def shard_names(sample):
    """The shards of a sample or training set: from its own input, settings and models alone
    (virnucpro.sizing), so they stay the same when other samples, the GPUs or the executor
    change."""
    count = config["embedding"]["shards"]
    if count == "auto":
        row = samples.get(sample) or training_sets[sample]
        count = shards_for_sample(
            row["fasta"], row["chunk_size"], row["chunking"], SAMPLE_MODELS[sample]
        )
    return [shard_name(i) for i in range(count)]


SHARDS = {sample: shard_names(sample) for sample in [*samples, *training_sets]}


def samples_embedded_with(one_model):
    """A wildcard pattern of the samples whose classifier takes one model, or both."""
    return names_pattern(
        [s for s, models in SAMPLE_MODELS.items() if (len(models) == 1) == one_model]
    )


def model_files(model):
    """The checkpoint files an embedding job of `model` reads."""
    return dnabert_s_files() if model == "dnabert_s" else [config["models"]["esm2"]]


def embedding_files(sample, shard=None):
    """The embedding files of a sample (or of one of its shards), shard by shard, each shard's
    in features order."""
    return expand(
        "results/{sample}/embeddings/{shard}.{model}.h5",
        sample=sample,
        shard=SHARDS[sample] if shard is None else [shard],
        model=SAMPLE_MODELS[sample],
    )


def sample_settings(sample):
    """What a sample's calls were made with, as results/samples.tsv lists them."""
    row = samples[sample]
    return {
        "chunk_size": row["chunk_size"],
        "chunking": row["chunking"],
        "classifier": sample_classifier(sample),
        # the embedding models its classifier takes; NA for one it does not
        **{
            model: config["models"][model] if model in SAMPLE_MODELS[sample] else None
            for model in ("esm2", "dnabert_s")
        },
        **config["calling"],
        **{f"region_{key}": value for key, value in config["regions"].items()},
    }


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


def final_outputs():
    """Every sample's results and the table of all samples, the per-shard embeddings
    included: a shard file that goes missing is then remade, with only what depends on it.
    With a training sheet of evaluate sets, the evaluation too (training is done where a
    sample's classifier is the one trained, as its input).
    """
    results = expand("results/{sample}/{name}", sample=samples, name=SAMPLE_RESULTS)
    embeddings = [path for sample in samples for path in embedding_files(sample)]
    evaluation = evaluation_outputs() if training_sets_of("evaluate") else []
    return results + embeddings + ["results/samples.tsv"] + evaluation


# The training run (train.smk)


def training_set_input(wildcards):
    """The set's FASTA, and its GenBank file where the sheet gives one."""
    row = training_sets[f"training/{wildcards.set}"]
    return {key: row[key] for key in ("fasta", "genbank") if key in row}


def training_set_params(role):
    """train_run.TrainingSet fields of each set of a role: its embedding files shard by shard
    (each shard's in features order), its labels table, its label and FASTA (SPEC order).
    """
    per_shard = len(config["training"]["models"])
    sets = []
    for name in training_sets_of(role):
        files = embedding_files(name)
        sets.append(
            {
                "shards": [
                    files[i : i + per_shard] for i in range(0, len(files), per_shard)
                ],
                "labels_tsv": f"results/{name}/labels.tsv",
                "label": training_sets[name]["label"],
                "fasta": training_sets[name]["fasta"],
            }
        )
    return sets


def training_inputs(role):
    """An input function: the embedding files and labels tables of the sets of a role."""
    return lambda wildcards: set_files(checked_sets(role))


def checked_sets(role):
    """training_set_params of a role, once it is checked that the training sheet has sets of
    it: called by input functions, so only when a target needs them."""
    if not training_sets_of(role):
        why = (
            f"the training sheet {config['training']['sheet']} has no set of role {role}"
            if training_sets
            else "the config names no training sheet (training.sheet)"
        )
        raise InputError(
            f"{why}: the {role} step needs one (config/README.md, Training)"
        )
    return training_set_params(role)


def set_files(sets):
    """The embedding files and labels tables of training_set_params' sets."""
    return {
        "embeddings": [path for s in sets for shard in s["shards"] for path in shard],
        "labels": [s["labels_tsv"] for s in sets],
    }


# The classifiers `evaluate` measures on the evaluate sets, by their {classifier} name in
# results/training/evaluation/: the one trained here, and each of training.compare_with.
TRAINED = "trained"


def evaluated_classifiers():
    """{name: {"path", "models"}} of the classifiers to evaluate: `trained`, and each of
    training.compare_with named by its file stem, with the embedding models it takes. Refused
    at plan time where two share a name, or where one takes a model the evaluate sets are not
    embedded with."""
    embedded = tuple(config["training"]["models"])
    classifiers = {TRAINED: {"path": TRAINED_CLASSIFIER, "models": embedded}}
    for path in config["training"]["compare_with"]:
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


EVALUATED = evaluated_classifiers()


def evaluation_outputs():
    """What `evaluate` makes: each classifier's metrics and figure, and their table (the
    outputs of train.smk's rules, read when `all` and `evaluate` are defined after them).
    """
    return [
        *rules.tabulate_evaluation.output,
        *expand(rules.evaluate_classifier.output, classifier=EVALUATED),
    ]


def evaluation_sets(classifier):
    """training_set_params of the evaluate sets, each shard's files cut to those of the
    classifier's models, in its features order."""
    embedded = config["training"]["models"]
    kept = [embedded.index(model) for model in EVALUATED[classifier]["models"]]
    sets = checked_sets("evaluate")
    for s in sets:
        s["shards"] = [[shard[i] for i in kept] for shard in s["shards"]]
    return sets


def evaluation_inputs(wildcards):
    """The classifier, and the embedding files and labels tables of the evaluate sets it reads."""
    sets = evaluation_sets(wildcards.classifier)
    return {"classifier": EVALUATED[wildcards.classifier]["path"], **set_files(sets)}


def tabulate_finished_samples(snakemake_log):
    """After a run in which some sample did not finish (the tabulate_samples rule, which needs
    every sample's results, did not run): results/samples.tsv and samples.html of the samples
    that finished, each one that did not listed with why (its first job to fail, by its log,
    or its results found damaged, which are removed). Out of room, one line says so.
    """
    from virnucpro.damage import DamagedFile, removed
    from virnucpro.disk_full import DiskFull
    from virnucpro.job_logs import sample_failure
    from virnucpro.samples_table import tabulate_samples
    from virnucpro.table_sizes import check_sizes

    finished, failed = {}, {}
    for sample in samples:
        records, summary = (
            f"results/{sample}/{name}" for name in ("records.tsv", "summary.txt")
        )
        try:
            check_sizes(summary, [records])
            finished[sample] = (records, summary, sample_settings(sample))
        except DamagedFile as damaged:
            failed[sample] = (str(removed(damaged)), sample_settings(sample))
        except FileNotFoundError:
            why = sample_failure("logs", sample, RUN_STARTED) or (
                f"it did not finish: see {snakemake_log}"
            )
            failed[sample] = (why, sample_settings(sample))
    if failed:
        try:
            tabulate_samples(finished, *rules.tabulate_samples.output, failed=failed)
        except DiskFull as full:
            logger.error(str(full))


onerror:
    tabulate_finished_samples(log)
