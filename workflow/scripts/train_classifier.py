from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

import torch  # noqa: E402 - after the log is open

from virnucpro.train_run import TrainingSet, train_classifier  # noqa: E402

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
)
