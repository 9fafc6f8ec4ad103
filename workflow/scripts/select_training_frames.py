from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.training.frames import select_training_set  # noqa: E402 - after the log is open

select_training_set(
    snakemake.input.fasta,
    snakemake.input.get("genbank"),
    snakemake.params.label,
    snakemake.params.chunk_size,
    snakemake.params.models,
    snakemake.params.shards,
    snakemake.output,
)
