"""One embedding job per device: K simulated GPUs, more jobs than devices, CPU compute."""

import re
from collections import defaultdict
from datetime import datetime

from workflow_runs import DEMO, set_config, snakemake

K = 3
TAKEN = re.compile(r"^(\S+ \S+) INFO virnucpro.gpu_lease: lease on GPU (\S+) taken", re.M)
WAITED = re.compile(r"lease on GPU \S+ taken \(waited ([\d.]+) s\)")
RELEASED = re.compile(r"^(\S+ \S+) INFO virnucpro.gpu_lease: lease on GPU (\S+) released", re.M)
VISIBLE = re.compile(r"CUDA_VISIBLE_DEVICES=(\S*)\)")


def when(stamp):
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def test_each_embedding_job_holds_one_device_and_all_devices_are_used(workdir, tmp_path):
    set_config(workdir, shards=3, gpus=list(range(K)), lease_dir=str(tmp_path / "leases"))
    snakemake(workdir, *DEMO, "--cores", str(K + 1))
    logs = sorted((workdir / "logs").glob("embed_shard/*/*.log"))
    assert len(logs) == 2 * 3  # samples x shards
    spans = defaultdict(list)
    for log in logs:
        text = log.read_text()
        (taken,), (released,) = TAKEN.findall(text), RELEASED.findall(text)
        assert taken[1] == released[1] and VISIBLE.findall(text) == [taken[1]], log
        # Snakemake starts no more embedding jobs than there are GPUs: none queues for a lease
        assert float(WAITED.search(text).group(1)) < 1.0, log
        spans[taken[1]].append((when(taken[0]), when(released[0])))
    assert sorted(spans) == [str(device) for device in range(K)]
    for device, held in spans.items():
        held.sort()
        for (_, end), (start, _) in zip(held, held[1:], strict=False):
            assert start >= end, f"two jobs held GPU {device} at once"
    starts = sorted(start for held in spans.values() for start, _ in held)
    ends = sorted(end for held in spans.values() for _, end in held)
    assert any(s < e for s, e in zip(starts[1:], ends, strict=False)), (
        "no two devices were ever in use at once"
    )
