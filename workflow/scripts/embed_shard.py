from virnucpro.logs import log_to

log_to(snakemake.log[0])

import torch  # noqa: E402 - after the log is open

from virnucpro.embed import embed_shard  # noqa: E402

torch.set_num_threads(snakemake.threads)
settings = snakemake.params.embedding
embed_shard(
    snakemake.input.shard,
    snakemake.output.h5,
    snakemake.params.kind,
    snakemake.params.model,
    device=settings["device"],
    precision=settings["precision"],
    batch_tokens=settings.get("batch_tokens"),
)
