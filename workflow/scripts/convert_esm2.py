from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.models.esm2 import convert_checkpoint  # noqa: E402 - after the log is open

convert_checkpoint(snakemake.input[0], snakemake.output[0])
