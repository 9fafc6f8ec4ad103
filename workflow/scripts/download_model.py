from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.download import download_model  # noqa: E402 - after the log is open

download_model(snakemake.wildcards.path, snakemake.output[0], snakemake.params.entry)
