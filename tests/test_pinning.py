"""Embedding jobs and GPU leases: K simulated GPUs, two job slots per GPU (Snakemake's `gpu`
resource, as the workflow gives a local run), more jobs than slots, CPU compute. A job may
start while its GPU computes another's shard; it reads and tokenizes its own meanwhile and
takes the lease only then, so no two jobs ever compute on one device at once."""

import re
from collections import defaultdict
from datetime import datetime

import pytest

from workflow_runs import DEMO, set_config, snakemake

K = 2
LINE = re.compile(r"^(\S+ \S+) INFO (\S+): (.*)$", re.M)
TAKEN = re.compile(r"lease on GPU (\S+) taken \(waited ([\d.]+) s\)")
RELEASED = re.compile(r"lease on GPU (\S+) released")
VISIBLE = re.compile(r"CUDA_VISIBLE_DEVICES=(\S*)\)")


def when(stamp):
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def events(log):
    """(time, logger, message) of each line of a job's log, in order."""
    return [(when(stamp), name, message) for stamp, name, message in LINE.findall(log)]


@pytest.mark.slow
def test_no_two_jobs_compute_on_one_device_and_a_waiting_job_has_read_its_shard(workdir, tmp_path):
    set_config(workdir, shards=3, gpus=list(range(K)), lease_dir=str(tmp_path / "leases"))
    # cores enough for two embedding jobs a GPU (virnucpro.planning.scheduling): one computes,
    # one waits
    snakemake(workdir, *DEMO, "--cores", str(2 * K + 1))
    logs = sorted((workdir / "logs").glob("embed_shard/*/*.log"))
    assert len(logs) == 2 * 3  # samples x shards
    spans, waited = defaultdict(list), []
    for log in logs:
        text = log.read_text()
        lines = events(text)
        messages = [message for _, _, message in lines]
        (taken,) = [i for i, m in enumerate(messages) if TAKEN.match(m)]
        (released,) = [i for i, m in enumerate(messages) if RELEASED.match(m)]
        device = TAKEN.match(messages[taken])[1]
        assert RELEASED.match(messages[released])[1] == device
        assert VISIBLE.findall(text) == [device], log
        (tokenized,) = [i for i, m in enumerate(messages) if "frames read and tokenized" in m]
        (cpu_done,) = [i for i, m in enumerate(messages) if m.startswith("CPU phase done")]
        (gpu_done,) = [i for i, m in enumerate(messages) if m.startswith("GPU work done")]
        # the lease was free at the job's start and taken then, or it was taken once the shard
        # was read and tokenized and the CPU phase done
        assert taken < tokenized or cpu_done < taken, log
        if cpu_done < taken:
            waited.append(float(TAKEN.match(messages[taken])[2]))
        # released once the GPU's work was done, before the job finished its files
        assert released < gpu_done < len(messages) - 1, log
        spans[device].append((lines[taken][0], lines[released][0]))
    assert sorted(spans) == [str(device) for device in range(K)]  # every device was used
    for device, held in spans.items():
        held.sort()
        for (_, end), (start, _) in zip(held, held[1:], strict=False):
            assert start >= end, f"two jobs held GPU {device} at once"
    # 6 jobs in 4 slots on 2 devices: jobs started beside others on a device, and waited
    assert waited, "no job started while its device was in use"
