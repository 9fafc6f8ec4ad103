"""Shared fixtures: paths, and tiny random-weight checkpoints in the published formats; and
the tests that need a GPU or a SLURM cluster left out unless -m names them."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from virnucpro.demo import build_demo_models
from virnucpro.demo.random_checkpoints import write_dnabert_s, write_esm2
from virnucpro.models.architectures import DNABertConfig

from stages import run_sample

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# real labelled 3 kb RefSeq fragments from DeepVirFinder (tests/data/README.md); the tests read
# its validation set (100 viral, 100 host), the demo's training the others
DVF = DATA / "dvf"
DVF_VALIDATION = (DVF / "host_val.fa", DVF / "virus_val.fa")
# The published DNABERT-S config.json and tokenizer.json (the weights are built at random)
REAL_DNABERT_S = DATA / "dnabert-s"
# the demo's input: 8 fragments of 3 kb, 4 viral and 4 host (config/demo/README.md)
DEMO_FA = REPO / "config" / "demo" / "data" / "demo.fa"


# Tests marked with these need a machine this may not be: they run only where -m names their
# marker (`pytest -m gpu`), whatever else it selects (`pytest -m "not slow"`).
MACHINE_MARKERS = ("gpu", "slurm")


def pytest_collection_modifyitems(config, items):
    named = set(re.findall(r"\w+", config.getoption("markexpr")))
    unnamed = [marker for marker in MACHINE_MARKERS if marker not in named]
    left_out = [item for item in items if any(item.get_closest_marker(m) for m in unnamed)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def fastq(records, newline="\n"):
    """FASTQ text of (header, sequence) records, four lines each. Every quality line starts with
    '@' or '+' and holds both, as real ones may (Phred 31 and 10): no line but the header may be
    taken for a record's start; every other '+' line repeats its header, as some tools write."""
    lines = []
    for i, (header, sequence) in enumerate(records):
        quality = (("@+IF" if i % 2 else "+@FI") * len(sequence))[: len(sequence)]
        lines += [f"@{header}", sequence, "+" + header * (i % 2), quality]
    return "".join(line + newline for line in lines)


@pytest.fixture(scope="session")
def esm2_tiny(tmp_path_factory):
    """A fair-esm checkpoint: 3 layers, width 96, 6 heads."""
    return write_esm2(tmp_path_factory.mktemp("esm2") / "esm2_t3_tiny.pt", 3, 96, 6, seed=11)


@pytest.fixture(scope="session")
def dnabert_tiny(tmp_path_factory):
    """A DNABERT-S directory with the real tokenizer and a shrunk model (12 heads kept)."""
    cfg = DNABertConfig(
        hidden_size=96, num_hidden_layers=2, num_attention_heads=12, intermediate_size=160
    )
    return write_dnabert_s(
        tmp_path_factory.mktemp("dnabert") / "DNABERT-S",
        cfg,
        REAL_DNABERT_S / "tokenizer.json",
        seed=12,
    )


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """The demo's models: {esm2, dnabert_s, classifier_300, classifier_500} paths."""
    root = tmp_path_factory.mktemp("demo")
    paths = {
        "esm2": root / "esm2_t4_demo.pt",
        "dnabert_s": root / "DNABERT-S-demo",
        "classifier_300": root / "300_model.pth",
        "classifier_500": root / "500_model.pth",
    }
    build_demo_models(
        paths["esm2"], paths["dnabert_s"], [paths["classifier_300"], paths["classifier_500"]]
    )
    return paths


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one CPU thread for a module's tests, and as it was after them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, demo_models):
    """The demo input through every stage function (tests/stages.py), in three shards."""
    return run_sample(DEMO_FA, demo_models, tmp_path_factory.mktemp("run"), shards=3)


def copy_workflow(directory):
    """A copy of the workflow (workflow/, config/ with the demo's inputs, profiles/) in
    `directory`."""
    for name in ("workflow", "config", "profiles", "environment.yml"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, directory / name)
        else:
            shutil.copy(source, directory / name)
    return directory


# the workflow/Snakefile `snakedeploy deploy-workflow` writes (its use_module template), with the
# module's Snakefile at a path instead of on GitHub
DEPLOYED_SNAKEFILE = """configfile: "config/config.yaml"


module virnucpro:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from virnucpro{prefix}
"""


def deploy(workflow, project, prefix=""):
    """A user's project directory as snakedeploy lays it out: the config/ of `workflow` (a copy
    of the workflow) copied into it, and a workflow/Snakefile that uses `workflow`'s rules as a
    module (named with `prefix`, such as ' as vnp_*')."""
    shutil.copytree(workflow / "config", project / "config")
    (project / "workflow").mkdir()
    snakefile = DEPLOYED_SNAKEFILE.format(
        snakefile=workflow / "workflow" / "Snakefile", prefix=prefix
    )
    (project / "workflow" / "Snakefile").write_text(snakefile)
    return project


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow to run Snakemake in."""
    return copy_workflow(tmp_path)
