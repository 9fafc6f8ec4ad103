from virnucpro.logs import log_to

log_to(snakemake.log[0])

from virnucpro.report import aggregate_sample  # noqa: E402 - after the log is open

aggregate_sample(
    snakemake.wildcards.sample,
    snakemake.input.records,
    snakemake.input.chunks,
    list(snakemake.input.scores),
    list(snakemake.input.embeddings),
    snakemake.output.predictions,
    snakemake.output.highestscore,
    snakemake.output.records,
    snakemake.output.chunks,
    snakemake.output.summary,
    {
        "classifier": snakemake.input.classifier,
        "chunk_size": snakemake.params.chunk_size,
        "chunking": snakemake.params.chunking,
    },
)
