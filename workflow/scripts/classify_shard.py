from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.predict import classify_shard  # noqa: E402

with removing_damaged_inputs():
    classify_shard(
        list(snakemake.input.embeddings),
        snakemake.input.classifier,
        snakemake.output.scores,
        threads=snakemake.threads,
    )
