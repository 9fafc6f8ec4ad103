from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.stages.prepare import prepare_sample  # noqa: E402 - after the log is open

prepare_sample(
    snakemake.input.fasta,
    snakemake.params.chunk_size,
    snakemake.params.mode,
    snakemake.params.models,
    snakemake.params.shards,
    snakemake.output,
    workers=snakemake.threads,
)
