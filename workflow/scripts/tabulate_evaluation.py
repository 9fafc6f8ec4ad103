from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.io.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.report.html_page import write_table_page  # noqa: E402
from virnucpro.training.evaluation import tabulate_evaluations  # noqa: E402

with removing_damaged_inputs(snakemake.input):
    tabulate_evaluations(
        snakemake.params.classifiers, snakemake.input.metrics, snakemake.output.table
    )
write_table_page(snakemake.output.table, snakemake.output.page, snakemake.output.table)
