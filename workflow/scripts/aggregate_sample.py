import tempfile
from pathlib import Path

from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.calling import CallRule  # noqa: E402 - after the log is open
from virnucpro.damage import removing_damaged_inputs  # noqa: E402
from virnucpro.predict import classify_shard  # noqa: E402
from virnucpro.regions import RegionSettings  # noqa: E402
from virnucpro.report import aggregate_sample  # noqa: E402

# INTERIM until the parallel aggregation lands: classify each shard here, then aggregate
per_shard = len(snakemake.params.models)
embeddings = list(snakemake.input.embeddings)
files = [embeddings[i : i + per_shard] for i in range(0, len(embeddings), per_shard)]
with removing_damaged_inputs(), tempfile.TemporaryDirectory() as tmp:
    shards = []
    for i, shard_files in enumerate(files):
        scores = Path(tmp) / f"{i}.tsv"
        classify_shard(shard_files, snakemake.input.classifier, scores, threads=snakemake.threads)
        shards.append((scores, shard_files))
    aggregate_sample(
        snakemake.wildcards.sample,
        snakemake.input.records,
        snakemake.input.chunks,
        shards,
        snakemake.output,
        {
            "classifier": snakemake.input.classifier,
            "chunk_size": snakemake.params.chunk_size,
            "chunking": snakemake.params.chunking,
        },
        CallRule(**snakemake.params.calling),
        RegionSettings(**snakemake.params.regions),
    )
