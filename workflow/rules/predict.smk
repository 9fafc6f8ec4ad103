rule classify_shard:
    input:
        dnabert_s="results/{sample}/embeddings/{shard}.dnabert_s.h5",
        esm2="results/{sample}/embeddings/{shard}.esm2.h5",
        classifier=classifier_for,
    output:
        scores="results/{sample}/scores/{shard}.tsv",
    log:
        "logs/classify_shard/{sample}/{shard}.log",
    benchmark:
        "logs/benchmarks/classify_shard/{sample}/{shard}.tsv"
    threads: 8  # the MLP over ~3328 features per frame is most of its time
    script:
        "../scripts/classify_shard.py"


rule aggregate_sample:
    input:
        records="results/{sample}/prepare/input_records.tsv",
        chunks="results/{sample}/prepare/chunk_frames.tsv",
        scores=score_files,
        dnabert_s=lambda wildcards: embedding_files(wildcards.sample, "dnabert_s"),
        esm2=lambda wildcards: embedding_files(wildcards.sample, "esm2"),
        classifier=classifier_for,
    output:
        predictions="results/{sample}/prediction_results.txt",
        highestscore="results/{sample}/prediction_results_highestscore.csv",
        records="results/{sample}/records.tsv",
        chunks="results/{sample}/chunks.tsv",
        summary="results/{sample}/summary.txt",
    log:
        "logs/aggregate_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/aggregate_sample/{sample}.tsv"
    params:
        chunk_size=lambda wildcards: samples[wildcards.sample]["chunk_size"],
        chunking=lambda wildcards: samples[wildcards.sample]["chunking"],
    script:
        "../scripts/aggregate_sample.py"
