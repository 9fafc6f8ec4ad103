"""The demo through profiles/slurm on a real SLURM cluster (tests/slurm/start_cluster.sh; .ci/run
starts one and runs `pytest -m slurm`): the same outputs as a local run, one GPU per job."""

import filecmp
import re
import shutil

import h5py
import numpy as np
import pytest
import yaml

from workflow_runs import DEMO, snakemake

pytestmark = pytest.mark.slurm
REPORTS = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "records.tsv",
    "chunks.tsv",
    "summary.txt",
)


def site_profile(workdir):
    """profiles/slurm as a site edits it: this cluster's small node, no accounting database."""
    profile = workdir / "profiles" / "site"
    shutil.copytree(workdir / "profiles" / "slurm", profile)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["default-resources"]["mem_mb"] = "500 * attempt"
    for resources in settings["set-resources"].values():
        resources["mem_mb"] = "500 * attempt"
    settings["set-threads"] = dict.fromkeys(settings["set-threads"], 2)  # this node's CPUs
    settings |= {
        "slurm-no-account": True,
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 1,
        "seconds-between-status-checks": 2,
    }
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    return profile


def test_the_demo_on_slurm_matches_a_local_run(workdir, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(workdir, local)
    snakemake(local, *DEMO, "--cores", "2")
    snakemake(workdir, "--profile", str(site_profile(workdir)), *DEMO)

    for sample in ("demo_500", "demo_300_legacy"):
        ours, theirs = workdir / "results" / sample, local / "results" / sample
        for name in REPORTS:
            assert filecmp.cmp(ours / name, theirs / name, shallow=False), f"{sample}/{name}"
        for h5 in sorted(theirs.glob("embeddings/*.h5")):
            with h5py.File(h5) as a, h5py.File(ours / "embeddings" / h5.name) as b:
                for dataset in ("ordinal", "frame_id", "embedding"):
                    assert np.array_equal(a[dataset][:], b[dataset][:]), f"{h5.name}/{dataset}"

    granted = re.compile(r"SLURM job \d+: CUDA_VISIBLE_DEVICES=(\S*) as granted")
    logs = sorted((workdir / "logs").glob("embed_shard/*/*.log"))
    assert len(logs) == 4  # two samples of two shards
    for log in logs:
        (devices,) = granted.findall(log.read_text())
        assert re.fullmatch(r"\d+", devices), f"{log}: CUDA_VISIBLE_DEVICES={devices!r}"
