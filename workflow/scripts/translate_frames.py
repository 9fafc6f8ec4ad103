from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.prepare import translate_sample  # noqa: E402 - after the log is open

translate_sample(
    snakemake.input.chunks,
    snakemake.input.spans,
    snakemake.output.nucleotide,
    snakemake.output.protein,
    snakemake.output.chunks,
    workers=snakemake.threads,
)
