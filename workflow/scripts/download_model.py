import sys

from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.models.download import DownloadError, download_model  # noqa: E402 - after the log is open

try:
    download_model(snakemake.wildcards.path, snakemake.output[0], snakemake.params.entry)
except DownloadError as error:
    sys.exit(str(error))  # one line in the log: the URL, what failed, the config key to set
