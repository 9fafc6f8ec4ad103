from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

import torch  # noqa: E402 - after the log is open

from virnucpro.io.damage import removing_damaged_inputs  # noqa: E402
from virnucpro.report.html_page import write_table_page  # noqa: E402
from virnucpro.training.run import TrainingSet, evaluate_classifier  # noqa: E402

torch.set_num_threads(snakemake.threads)
with removing_damaged_inputs(snakemake.input):
    evaluate_classifier(
        [TrainingSet(**fields) for fields in snakemake.params.sets],
        snakemake.input.classifier,
        snakemake.output.metrics,
        snakemake.output.figure,
        by_length=True,
    )
write_table_page(snakemake.output.metrics, snakemake.output.page, snakemake.output.metrics)
