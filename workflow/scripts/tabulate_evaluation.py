from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.evaluation import tabulate_evaluations  # noqa: E402
from virnucpro.html_page import write_table_page  # noqa: E402

with removing_damaged_inputs(snakemake.input):
    tabulate_evaluations(
        snakemake.params.classifiers, snakemake.input.metrics, snakemake.output.table
    )
write_table_page(snakemake.output.table, snakemake.output.page, snakemake.output.table)
