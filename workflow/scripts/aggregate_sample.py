from virnucpro.runtime.lifeline import end_with_snakemake
from virnucpro.runtime.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.calls.calling import CallRule  # noqa: E402 - after the log is open
from virnucpro.calls.regions import RegionSettings  # noqa: E402
from virnucpro.io.damage import removing_damaged_inputs  # noqa: E402
from virnucpro.io.h5store import random_weights  # noqa: E402
from virnucpro.stages.aggregate import aggregate_sample  # noqa: E402
from virnucpro.stages.outputs import write_sample_outputs  # noqa: E402

rule = CallRule(**snakemake.params.calling)
per_shard = len(snakemake.params.models)  # embedding files, one per model, shard by shard
files = list(snakemake.input.embeddings)
with removing_damaged_inputs(snakemake.input):
    rows = aggregate_sample(
        snakemake.wildcards.sample,
        snakemake.input,
        [files[i : i + per_shard] for i in range(0, len(files), per_shard)],
        snakemake.output,
        {
            "classifier": snakemake.input.classifier,
            "chunk_size": snakemake.params.chunk_size,
            "chunking": snakemake.params.chunking,
        },
        rule,
        RegionSettings(**snakemake.params.regions),
        workers=snakemake.threads,
    )
    write_sample_outputs(
        snakemake.wildcards.sample,
        snakemake.input.fasta,
        snakemake.input.parts,
        snakemake.output,
        rows,
        rule,
        snakemake.output,
        workers=snakemake.threads,
        random_weights=random_weights(files),
    )
