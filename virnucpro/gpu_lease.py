"""One embedding job per GPU on a machine with several: a job takes a lease on one device before
it touches CUDA and sees only that device (CUDA_VISIBLE_DEVICES).

Snakemake schedules jobs but never assigns a GPU to one. Its `gpu` resource keeps at most as
many embedding jobs running as there are GPUs; the lease says which GPU each one gets. A lease
is an exclusive flock on a file per device in a directory shared by every run on the machine,
so two runs never share a GPU either, and the kernel releases it however the job ends.

Under SLURM the scheduler has already granted the job its GPU in CUDA_VISIBLE_DEVICES; the job
uses it as given.
"""

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def gpu_lease(devices, lease_dir, poll_seconds=0.5):
    """Hold one of `devices` (ids as the machine numbers them) for the block, with
    CUDA_VISIBLE_DEVICES set to it. No devices: nothing is leased (a CPU job)."""
    if "SLURM_JOB_ID" in os.environ:
        log.info(
            "SLURM job %s: CUDA_VISIBLE_DEVICES=%s as granted",
            os.environ["SLURM_JOB_ID"],
            os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        )
        yield os.environ.get("CUDA_VISIBLE_DEVICES")
        return
    if not devices:
        yield None
        return
    lease_dir = Path(lease_dir)
    lease_dir.mkdir(parents=True, exist_ok=True)
    waited = time.monotonic()
    while True:
        for device in devices:
            handle = open(lease_dir / f"gpu{device}.lock", "a+")  # noqa: SIM115 - held below
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
                log.info(
                    "lease on GPU %s taken (waited %.1f s): CUDA_VISIBLE_DEVICES=%s",
                    device,
                    time.monotonic() - waited,
                    device,
                )
                yield str(device)
            finally:
                log.info("lease on GPU %s released", device)
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_seconds)
