from virnucpro.logs import log_to

log_to(snakemake.log[0])

from virnucpro.models.esm2 import convert_checkpoint  # noqa: E402 - after the log is open

convert_checkpoint(snakemake.input[0], snakemake.output[0])
