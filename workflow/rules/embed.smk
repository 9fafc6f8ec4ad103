# A sample's classifier under one name for its embedding jobs, which score the frames with it
# while the vectors are in memory (virnucpro.calls.scoring). A link, so that pointing the sample at
# another classifier, or replacing the file, changes no embedding job's input: the aggregation
# sees the change and scores the stored vectors with the new one. A hard link where the
# classifier is on the same file system (no copy of its bytes), else a copy.
rule link_classifier:
    input:
        classifier_for,
    output:
        "results/{sample}/classifier",
    log:
        "logs/link_classifier/{sample}.log",
    benchmark:
        "logs/benchmarks/link_classifier/{sample}.tsv"
    localrule: True
    shell:
        "ln -f {input} {output} 2> {log} || cp {input} {output} 2>> {log}"


rule embed_shard:
    input:
        frames="results/{sample}/shards/frames.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
        esm2=config["models"]["esm2"],
        dnabert_s=dnabert_s_files(),
        classifier=scoring_classifier,
    output:
        dnabert_s="results/{sample}/embeddings/{shard}.dnabert_s.h5",
        esm2="results/{sample}/embeddings/{shard}.esm2.h5",
    log:
        "logs/embed_shard/{sample}/{shard}.log",
    benchmark:
        "logs/benchmarks/embed_shard/{sample}/{shard}.tsv"
    wildcard_constraints:
        sample=samples_embedded_with(one_model=False),
    threads: GPU_JOB_THREADS
    resources:
        gpu=1,
    params:
        models=list(EMBEDDING_MODELS),
        precision=config["embedding"]["precision"],
    script:
        "../scripts/embed_shard.py"


# A sample whose classifier takes one model's features: only that model's embedding job
use rule embed_shard as embed_shard_one_model with:
    input:
        frames="results/{sample}/shards/frames.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
        model=lambda wildcards: model_files(wildcards.model),
        classifier=scoring_classifier,
    output:
        h5="results/{sample}/embeddings/{shard}.{model}.h5",
    log:
        "logs/embed_shard/{sample}/{shard}.{model}.log",
    benchmark:
        "logs/benchmarks/embed_shard/{sample}/{shard}.{model}.tsv"
    wildcard_constraints:
        sample=samples_embedded_with(one_model=True),
        model="|".join(EMBEDDING_MODELS),
    params:
        models=lambda wildcards: [wildcards.model],
        precision=config["embedding"]["precision"],
