rule embed_shard:
    input:
        frames="results/{sample}/shards/frames.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
        esm2=config["models"]["esm2"],
        dnabert_s=dnabert_s_files(),
    output:
        dnabert_s="results/{sample}/embeddings/{shard}.dnabert_s.h5",
        esm2="results/{sample}/embeddings/{shard}.esm2.h5",
    log:
        "logs/embed_shard/{sample}/{shard}.log",
    benchmark:
        "logs/benchmarks/embed_shard/{sample}/{shard}.tsv"
    threads: config["embedding"]["threads"]
    resources:
        gpu=1,
    params:
        dnabert_s=lambda wildcards, input: Path(input.dnabert_s[0]).parent,
        precision=config["embedding"]["precision"],
    script:
        "../scripts/embed_shard.py"
