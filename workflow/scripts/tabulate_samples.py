from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.io.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.stages.samples_table import tabulate_samples  # noqa: E402

settings = snakemake.params.settings
files = zip(snakemake.input.records, snakemake.input.summaries, strict=True)
with removing_damaged_inputs(snakemake.input):
    tabulate_samples(
        {sample: (*paths, settings[sample]) for sample, paths in zip(settings, files, strict=True)},
        snakemake.output.table,
        snakemake.output.overview,
    )
