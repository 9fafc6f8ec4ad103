rule aggregate_sample:
    input:
        records="results/{sample}/prepare/input_records.tsv",
        chunks="results/{sample}/prepare/chunk_frames.tsv",
        parts="results/{sample}/prepare/parts.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
        embeddings=lambda wildcards: embedding_files(wildcards.sample),
        classifier=classifier_for,
    output:
        predictions="results/{sample}/prediction_results.txt",
        highestscore="results/{sample}/prediction_results_highestscore.csv",
        records="results/{sample}/records.tsv",
        chunks="results/{sample}/chunks.tsv",
        regions=report(
            "results/{sample}/regions.tsv",
            caption="../report/regions.rst",
            category="Tables",
            subcategory="{sample}",
            labels={"sample": "{sample}", "table": "viral regions"},
        ),
        summary=report(
            "results/{sample}/summary.txt",
            caption="../report/summary.rst",
            category="Tables",
            subcategory="{sample}",
            labels={"sample": "{sample}", "table": "summary, models and settings"},
        ),
        part_rows="results/{sample}/aggregate/part_rows.tsv",
    log:
        "logs/aggregate_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/aggregate_sample/{sample}.tsv"
    threads: CPU_STAGE_THREADS
    params:
        models=lambda wildcards: SAMPLE_MODELS[wildcards.sample],
        chunk_size=lambda wildcards: samples[wildcards.sample]["chunk_size"],
        chunking=lambda wildcards: samples[wildcards.sample]["chunking"],
        calling=config["calling"],
        regions=config["regions"],
    script:
        "../scripts/aggregate_sample.py"


rule write_virus_fasta:
    input:
        fasta=sample_fasta,
        records="results/{sample}/records.tsv",
        regions="results/{sample}/regions.tsv",
        parts="results/{sample}/prepare/parts.tsv",
        part_rows="results/{sample}/aggregate/part_rows.tsv",
    output:
        fna="results/{sample}/virus.fna",
    log:
        "logs/write_virus_fasta/{sample}.log",
    benchmark:
        "logs/benchmarks/write_virus_fasta/{sample}.tsv"
    # a core left to plot_sample (one thread), which runs beside it
    threads: max(1, CPU_STAGE_THREADS - 1)
    script:
        "../scripts/write_virus_fasta.py"
