rule embed_dnabert_s:
    input:
        shard="results/{sample}/shards/{shard}.tsv",
        model=dnabert_s_files(),
    output:
        h5="results/{sample}/embeddings/{shard}.dnabert_s.h5",
    log:
        "logs/embed_dnabert_s/{sample}/{shard}.log",
    benchmark:
        "benchmarks/embed_dnabert_s/{sample}/{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: config["embedding"]["threads"]
    resources:
        gpu=1,
    params:
        kind="dnabert_s",
        model=lambda wildcards, input: Path(input.model[0]).parent,
        precision=config["embedding"]["precision"],
    script:
        "../scripts/embed_shard.py"


rule embed_esm2:
    input:
        shard="results/{sample}/shards/{shard}.tsv",
        model=esm2_model(),
    output:
        h5="results/{sample}/embeddings/{shard}.esm2.h5",
    log:
        "logs/embed_esm2/{sample}/{shard}.log",
    benchmark:
        "benchmarks/embed_esm2/{sample}/{shard}.tsv"
    # Longest jobs first: the short DNABERT-S jobs then fill the GPUs' last minutes evenly,
    # instead of an ESM-2 job starting late on one GPU while the others idle.
    priority: 1
    conda:
        "../../environment.yml"
    threads: config["embedding"]["threads"]
    resources:
        gpu=1,
    params:
        kind="esm2",
        model=lambda wildcards, input: input.model,
        precision=config["embedding"]["precision"],
    script:
        "../scripts/embed_shard.py"
