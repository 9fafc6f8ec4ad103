from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.sharding import shard_frames  # noqa: E402 - after the log is open

shard_frames(
    snakemake.input.nucleotide,
    snakemake.input.protein,
    snakemake.params.shards,
    snakemake.output.frames,
    snakemake.output.manifest,
)
