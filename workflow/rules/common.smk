import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from virnucpro.errors import InputError
from virnucpro.io.classifier_header import EMBEDDING_MODELS, classifier_models
from virnucpro.models.architectures import (
    DNABERT_S_CONFIG,
    DNABERT_S_TOKENIZER,
    DNABERT_S_WEIGHTS,
    dnabert_s_weights,
)
from virnucpro.plan import TRAINED, chosen_gpus, make_plan, names_pattern
from virnucpro.planning.classifier_choice import (
    TRAINED_CLASSIFIER,
    check_chunk_size,
    planned_models,
)
from virnucpro.planning.sample_sheet import read_sample_sheet
from virnucpro.planning.scheduling import local_slots
from virnucpro.planning.schema_check import load_schema, problems
from virnucpro.planning.sizing import shards_for_sample
from virnucpro.runtime.lifeline import SNAKEMAKE_PID
from virnucpro.runtime.run_lock import AnotherRun, RunLock

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


def machine_gpus():
    """The GPUs this machine shows: CUDA_VISIBLE_DEVICES if set, else nvidia-smi's; none on a
    machine without GPUs."""
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
# (virnucpro.planning.scheduling): the `gpu` resource caps how many embedding jobs run, the job's lease
# (virnucpro.runtime.gpu_lease) picks its device, and one job computes on a device at a time.
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
GPUS = chosen_gpus(config["embedding"]["gpus"], workflow.nodes is None, machine_gpus)
if workflow.nodes is None:
    SLOTS = local_slots(local_cores(), len(GPUS), config["embedding"]["threads"])
    if SLOTS.jobs_per_gpu and "gpu" not in workflow.global_resources:
        workflow.register_resource("gpu", SLOTS.jobs_per_gpu * len(GPUS))
    GPU_JOB_THREADS, CPU_STAGE_THREADS = SLOTS.gpu_job_threads, SLOTS.cpu_stage_threads
else:  # a cluster job gets the cores it asks for (profiles/slurm: set-threads)
    GPU_JOB_THREADS, CPU_STAGE_THREADS = config["embedding"]["threads"], 8


def read_training_sheet():
    """The training sheet's rows by set; none without one."""
    sheet = config["training"]["sheet"]
    if sheet is None:
        return {}
    return read_sample_sheet(
        sheet,
        schema("training"),
        key="set",
        files=("fasta", "genbank"),
        config_key="training.sheet",
        sheet="training sheet",
    )


PLAN = make_plan(
    config,
    read_sample_sheet(config["samples"], schema("samples")),
    read_training_sheet(),
    check_classifier=lambda sample, row, path: check_chunk_size(
        sample, row["chunk_size"], path, config["training"]
    ),
    planned_models=lambda path: planned_models(path, config["training"]),
    classifier_models=classifier_models,
    shard_count=lambda row, models: shards_for_sample(
        row["fasta"], row["chunk_size"], row["chunking"], models
    ),
)
samples, training_sets = PLAN.samples, PLAN.training_sets

# The GPUs a local run leases reach its jobs (embed_shard, train_classifier) through the config,
# not as a param: a changed param makes Snakemake run a job again, and the GPUs change nothing a
# job makes. The report's settings table shows them.
config["embedding"] |= {"gpus": GPUS}


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


def classifier_for(wildcards):
    return PLAN.classifiers[wildcards.sample]


def scoring_classifier(wildcards):
    """The classifier an embedding job scores a sample's frames with (link_classifier); none
    for a training set. Ancient: a classifier changed or replaced since is the aggregation's to
    apply, to the stored vectors, and no reason to compute them again."""
    if wildcards.sample not in PLAN.classifiers:
        return []
    return ancient(f"results/{wildcards.sample}/classifier")


def dnabert_s_files():
    """The files of the DNABERT-S directory a job reads: the weights in either format, or
    before there are any, the pytorch_model.bin that download_model writes."""
    directory = Path(config["models"]["dnabert_s"])
    weights = dnabert_s_weights(directory) or directory / DNABERT_S_WEIGHTS[-1]
    return [directory / DNABERT_S_CONFIG, directory / DNABERT_S_TOKENIZER, weights]


def samples_embedded_with(one_model):
    """A wildcard pattern of the samples whose classifier takes one model, or both."""
    return names_pattern(
        [s for s, models in PLAN.models.items() if (len(models) == 1) == one_model]
    )


def model_files(model):
    """The checkpoint files an embedding job of `model` reads."""
    return dnabert_s_files() if model == "dnabert_s" else [config["models"]["esm2"]]


def sample_settings(sample):
    """What a sample's calls were made with, as results/samples.tsv lists them."""
    row = samples[sample]
    return {
        "chunk_size": row["chunk_size"],
        "chunking": row["chunking"],
        "classifier": PLAN.classifiers[sample],
        # the embedding models its classifier takes; NA for one it does not
        **{
            model: config["models"][model] if model in PLAN.models[sample] else None
            for model in ("esm2", "dnabert_s")
        },
        **config["calling"],
        **{f"region_{key}": value for key, value in config["regions"].items()},
    }


# The training run (train.smk)


def training_set_input(wildcards):
    """The set's FASTA, and its GenBank file where the sheet gives one."""
    row = training_sets[f"training/{wildcards.set}"]
    return {key: row[key] for key in ("fasta", "genbank") if key in row}


def training_inputs(role):
    """An input function: the embedding files and labels tables of the sets of a role."""
    return lambda wildcards: set_files(checked_sets(role))


def checked_sets(role):
    """Plan.set_fields of a role, once it is checked that the training sheet has sets of
    it: called by input functions, so only when a target needs them."""
    if not PLAN.sets_of(role):
        why = (
            f"the training sheet {config['training']['sheet']} has no set of role {role}"
            if training_sets
            else "the config names no training sheet (training.sheet)"
        )
        raise InputError(
            f"{why}: the {role} step needs one (config/README.md, Training)"
        )
    return PLAN.set_fields(role)


def set_files(sets):
    """The embedding files and labels tables of Plan.set_fields' sets."""
    return {
        "embeddings": [path for s in sets for shard in s["shards"] for path in shard],
        "labels": [s["labels_tsv"] for s in sets],
    }


def evaluation_sets(classifier):
    """Plan.evaluation_sets of a classifier, once checked_sets finds evaluate sets."""
    checked_sets("evaluate")
    return PLAN.evaluation_sets(classifier)


def evaluation_inputs(wildcards):
    """The classifier, and the embedding files and labels tables of the evaluate sets it reads."""
    sets = evaluation_sets(wildcards.classifier)
    return {
        "classifier": PLAN.evaluated[wildcards.classifier]["path"],
        **set_files(sets),
    }


def tabulate_finished_samples(snakemake_log):
    """After a run in which some sample did not finish (the tabulate_samples rule, which needs
    every sample's results, did not run): results/samples.tsv and samples.html of the samples
    that finished, each one that did not listed with why (its first job to fail, by its log,
    or its results found damaged, which are removed). Out of room, one line says so.
    """
    from virnucpro.io.damage import DamagedFile, removed
    from virnucpro.io.disk_full import DiskFull
    from virnucpro.runtime.job_logs import sample_failure
    from virnucpro.stages.samples_table import tabulate_samples
    from virnucpro.io.table_sizes import check_sizes

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
