from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.report.html_page import write_table_page  # noqa: E402 - after the log is open

for tsv, page in zip(snakemake.input, snakemake.output, strict=True):
    write_table_page(tsv, page, tsv)
