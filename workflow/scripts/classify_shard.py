from virnucpro.logs import log_to

log_to(snakemake.log[0])

import torch  # noqa: E402 - after the log is open

from virnucpro.predict import classify_shard  # noqa: E402

torch.set_num_threads(snakemake.threads)

classify_shard(
    snakemake.input.dnabert_s,
    snakemake.input.esm2,
    snakemake.input.classifier,
    snakemake.output.scores,
)
