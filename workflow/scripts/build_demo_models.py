from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.demo import build_demo_models  # noqa: E402 - after the log is open

build_demo_models(
    snakemake.output.esm2[0],
    snakemake.output.dnabert_s[0].rsplit("/", 1)[0],
    list(snakemake.output.classifiers),
    seed=snakemake.params.seed,
)
