"""How a local run shares the machine's cores between the embedding (GPU) jobs and the CPU
stages, so that neither waits on the other for cores.

Snakemake starts a job only when its threads are free. A CPU stage that asked for every core
would wait until no embedding job ran, and the GPU would then idle while the next samples were
prepared; an embedding job's own threads (packing, scoring, writing) are few. So the GPU jobs
get their threads first and every CPU stage the cores left beside them. Where cores allow, each
GPU gets two embedding-job slots: the second job does its CPU work (reading and tokenizing its
shard, the imports) while the first computes, and takes the GPU's lease when it ends
(virnucpro.stages.embed, virnucpro.runtime.gpu_lease).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalSlots:
    jobs_per_gpu: int  # embedding jobs Snakemake runs at once per GPU (one computes)
    gpu_job_threads: int
    cpu_stage_threads: int  # of a multi-process CPU stage (preparing, aggregating)


def local_slots(cores, gpus, embedding_threads):
    """LocalSlots for `cores` cores and `gpus` GPUs, embedding jobs asking `embedding_threads`
    (config embedding.threads): one core at least is left to the CPU stages."""
    cores = max(1, cores or 1)
    if gpus == 0:
        return LocalSlots(0, embedding_threads, cores)
    for jobs_per_gpu in (2, 1):
        held = jobs_per_gpu * gpus * embedding_threads
        if held < cores:
            return LocalSlots(jobs_per_gpu, embedding_threads, cores - held)
    threads = max(1, (cores - 1) // gpus)
    return LocalSlots(1, threads, max(1, cores - gpus * threads))
