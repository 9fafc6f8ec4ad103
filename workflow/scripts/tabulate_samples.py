from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.samples_table import tabulate_samples  # noqa: E402 - after the log is open

settings = snakemake.params.settings
tabulate_samples(
    {sample: (path, settings[sample]) for sample, path in zip(settings, snakemake.input.records, strict=True)},
    snakemake.output.table,
)
