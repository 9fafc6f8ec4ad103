"""What a benchmark samples beside a running workflow, each in a thread: the GPUs' busy share
from the driver, and the memory, CPU time and disk of the workflow's job processes."""

import os
import re
import shutil
import subprocess
import threading
import time
from collections import defaultdict

import numpy as np


class Sampler:
    """Calls `sample()` every `interval` seconds in a thread while in its `with` block."""

    def __init__(self, interval):
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self.stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()


class GpuSampler(Sampler):
    """Each GPU's utilisation as the driver reports it (the share of time a kernel ran), every
    `interval` seconds; `busy()` is the mean per GPU (none on a machine without GPUs)."""

    def __init__(self, indices, interval=0.05):
        super().__init__(interval)
        self.handles, self.samples = {}, defaultdict(list)
        if indices:
            import pynvml  # nvidia-ml-py, on every GPU machine these benchmarks run on

            self.nvml = pynvml
            pynvml.nvmlInit()
            self.handles = {i: pynvml.nvmlDeviceGetHandleByIndex(int(i)) for i in indices}

    def sample(self):
        for index, handle in self.handles.items():
            self.samples[index].append(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    def busy(self):
        return {i: round(float(np.mean(s)) / 100, 3) for i, s in self.samples.items()}


def gpu_indices():
    """The GPUs this machine shows (CUDA_VISIBLE_DEVICES if set, else nvidia-smi); none
    without a driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
    except OSError:
        return []
    return listed.stdout.split()


# Snakemake runs a rule's script as .snakemake/scripts/tmp<random>.<script name>.py
_SCRIPT = re.compile(r"scripts/tmp[^./]*\.(\w+)\.py")


class JobProcesses(Sampler):
    """The job processes of a Snakemake process `pid` (each child of it, with its descendants),
    every `interval` seconds: each one's peak memory, CPU seconds and when it was first and
    last seen (seconds from `started`, an epoch time), named by the script it runs; and the
    least free disk under `path`.

    Memory is its processes' resident memory summed, as Snakemake's benchmark files count it
    (RSS: the pages workers forked from one parent share count once per worker) and their
    proportional share of it (PSS: each shared page split among its sharers). Snakemake samples
    a job every 0.5 s for its first 15 s, then every 30 s, so a job of under 45 s is measured
    only in its first 15 s; this sees the whole job."""

    def __init__(self, pid, path, started, interval=0.5):
        import psutil  # a dependency of Snakemake

        super().__init__(interval)
        self.psutil, self.root, self.path, self.started = psutil, psutil.Process(pid), path, started
        self.jobs = {}  # child pid: {"script", "rss", "pss" (peaks, bytes), "cpu" (s by pid), ...}
        self.least_free = shutil.disk_usage(path).free

    def sample(self):
        self.least_free = min(self.least_free, shutil.disk_usage(self.path).free)
        now = round(time.time() - self.started, 1)
        try:
            children = self.root.children()
        except self.psutil.Error:
            return
        for child in children:
            job = self.jobs.setdefault(child.pid, {"script": None, "rss": 0, "pss": 0, "cpu": {}})
            try:
                rss = pss = 0
                for process in [child, *child.children(recursive=True)]:
                    with process.oneshot():
                        rss_part, pss_part = self._memory(process)
                        rss, pss = rss + rss_part, pss + pss_part
                        times = process.cpu_times()
                        job["cpu"][process.pid] = times.user + times.system
                        job["script"] = job["script"] or _script(process.cmdline())
            except self.psutil.Error:
                continue  # a process that ended between the listing and the reading
            job["rss"], job["pss"] = max(job["rss"], rss), max(job["pss"], pss)
            job.setdefault("start_s", now)
            job["end_s"] = now

    def _memory(self, process):
        """(RSS, PSS) of a process; where its memory map may not be read, RSS for both."""
        try:
            memory = process.memory_full_info()
        except self.psutil.AccessDenied:
            rss = process.memory_info().rss
            return rss, rss
        return memory.rss, memory.pss

    def table(self):
        """[{script, peak_rss_mb, peak_pss_mb, cpu_s, start_s, end_s}] of the job processes, by
        start."""
        return [
            {
                "script": job["script"] or "other",
                "peak_rss_mb": round(job["rss"] / 2**20),
                "peak_pss_mb": round(job["pss"] / 2**20),
                "cpu_s": round(sum(job["cpu"].values()), 1),
                "start_s": job["start_s"],
                "end_s": job["end_s"],
            }
            for job in sorted(self.jobs.values(), key=lambda job: job.get("start_s", 0))
            if "start_s" in job
        ]


def _script(cmdline):
    found = _SCRIPT.search(" ".join(cmdline))
    return found.group(1) if found else None
