from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()
settings = snakemake.config["embedding"]  # the device, and the GPUs a local run leases

from virnucpro.io.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.runtime.gpu_lease import gpu_lease  # noqa: E402

# the GPU lease is taken before CUDA starts
with removing_damaged_inputs(snakemake.input), gpu_lease(settings["gpus"], settings["lease_dir"]):
    import torch

    from virnucpro.runtime.device import resolve_device
    from virnucpro.training.run import TrainingSet, train_classifier

    torch.set_num_threads(snakemake.threads)
    train_classifier(
        [TrainingSet(**fields) for fields in snakemake.params.sets],
        snakemake.params.models,
        snakemake.params.chunk_size,
        snakemake.params.seed,
        snakemake.params.legacy,
        snakemake.output.classifier,
        snakemake.output.history,
        snakemake.output.metrics,
        device=resolve_device(settings["device"]),
    )
