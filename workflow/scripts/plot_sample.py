from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.plots import plot_sample  # noqa: E402 - after the log is open

plot_sample(
    snakemake.wildcards.sample,
    snakemake.input.records,
    snakemake.input.chunks,
    snakemake.input.regions,
    snakemake.params.threshold,
    snakemake.output.distribution,
    snakemake.output.length,
    snakemake.output.tracks,
)
