"""How a local run shares the cores: the CPU stages always keep a core beside the GPU jobs, and
each GPU gets a second embedding-job slot where cores allow."""

import pytest

from virnucpro.planning.scheduling import LocalSlots, local_slots


@pytest.mark.parametrize(
    ("cores", "gpus", "threads", "expected"),
    [
        (16, 1, 2, LocalSlots(2, 2, 12)),  # one H200 machine: two slots, 12 cores for the rest
        (128, 8, 2, LocalSlots(2, 2, 96)),
        (8, 2, 2, LocalSlots(1, 2, 4)),  # two slots a GPU would leave no core
        (2, 1, 2, LocalSlots(1, 1, 1)),  # a small workstation: one core each
        (4, 4, 2, LocalSlots(1, 1, 1)),  # more GPUs than cores can feed: one thread each
        (2, 0, 1, LocalSlots(0, 1, 2)),  # no GPU: the embedding runs on the CPU like any stage
        (None, 0, 2, LocalSlots(0, 2, 1)),  # a dry run without --cores
    ],
)
def test_the_cpu_stages_keep_cores_beside_the_gpu_jobs(cores, gpus, threads, expected):
    slots = local_slots(cores, gpus, threads)
    assert slots == expected
    if gpus:
        held = slots.jobs_per_gpu * gpus * slots.gpu_job_threads
        assert held + slots.cpu_stage_threads <= max(cores, gpus + 1)
