from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.samples_table import tabulate_samples  # noqa: E402 - after the log is open

settings = snakemake.params.settings
files = zip(snakemake.input.records, snakemake.input.summaries, strict=True)
tabulate_samples(
    {sample: (*paths, settings[sample]) for sample, paths in zip(settings, files, strict=True)},
    snakemake.output.table,
    snakemake.output.overview,
)
