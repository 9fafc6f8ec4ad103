from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.calling import CallRule  # noqa: E402 - after the log is open
from virnucpro.damage import removing_damaged_inputs  # noqa: E402
from virnucpro.regions import RegionSettings  # noqa: E402
from virnucpro.report import aggregate_sample  # noqa: E402

# the inputs list the shards in one order: each shard's scores beside its embedding files
per_shard = len(snakemake.params.models)
embeddings = list(snakemake.input.embeddings)
files = [embeddings[i : i + per_shard] for i in range(0, len(embeddings), per_shard)]
shards = zip(snakemake.input.scores, files, strict=True)
with removing_damaged_inputs():
    aggregate_sample(
        snakemake.wildcards.sample,
        snakemake.input.records,
        snakemake.input.chunks,
        list(shards),
        snakemake.output,
        {
            "classifier": snakemake.input.classifier,
            "chunk_size": snakemake.params.chunk_size,
            "chunking": snakemake.params.chunking,
        },
        CallRule(**snakemake.params.calling),
        RegionSettings(**snakemake.params.regions),
    )
