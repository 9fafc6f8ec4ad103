import logging
import os

from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to, process_age

log_to(snakemake.log[0])
end_with_snakemake()
# Settings that do not change the vectors are read here, not passed as params, so changing
# them (the GPUs among them) does not make Snakemake recompute finished shards.
settings = snakemake.config["embedding"]
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(settings["compile_cache"])

import torch

from virnucpro.calls.fidelity import GateSettings
from virnucpro.io.damage import removing_damaged_inputs
from virnucpro.runtime.gpu_lease import GpuLease
from virnucpro.stages.embed import embed_shard

if (age := process_age()) is not None:
    logging.getLogger("embed_shard").info(
        "%.1f s into the process: Python, Snakemake's preamble and the imports done", age
    )
torch.set_num_threads(snakemake.threads)
models = snakemake.params.models  # the output files' models, in their order
with removing_damaged_inputs(snakemake.input):
    # the job takes the GPU's lease only for its GPU work (stages.embed), and no CUDA call before
    embed_shard(
        snakemake.input.frames,
        snakemake.input.manifest,
        snakemake.wildcards.shard,
        dict(zip(models, snakemake.output, strict=True)),
        {model: snakemake.config["models"][model] for model in models},
        device=settings["device"],
        precision=snakemake.params.precision,
        batch_tokens=settings.get("batch_tokens"),
        # a training set has no classifier to score with
        classifier_path=snakemake.input.get("classifier") or None,
        fp8_gate=GateSettings(**settings["fp8_gate"]),
        lease=GpuLease(settings["gpus"], settings["lease_dir"]),
    )
