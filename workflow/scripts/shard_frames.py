from virnucpro.logs import log_to

log_to(snakemake.log[0])

from virnucpro.sharding import shard_frames  # noqa: E402 - after the log is open

shard_frames(
    snakemake.input.nucleotide,
    snakemake.input.protein,
    snakemake.params.shards,
    snakemake.output.frames,
    snakemake.output.manifest,
)
