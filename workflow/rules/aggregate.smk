# The calls of a sample's records, chunks and frames, and what is written of them: the tables,
# the viral sequences, the figures and the report's page of the calls, in one job
# (virnucpro.stages.aggregate, virnucpro.stages.outputs).
rule aggregate_sample:
    input:
        fasta=sample_fasta,
        input_records="results/{sample}/prepare/input_records.tsv",
        chunk_frames="results/{sample}/prepare/chunk_frames.tsv",
        parts="results/{sample}/prepare/parts.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
        embeddings=lambda wildcards: PLAN.embedding_files(wildcards.sample),
        classifier=classifier_for,
        # the embedding jobs' link to it as well: where a change of classifier makes the link
        # again, Snakemake plans the jobs that read the link, and those alone (not this job,
        # through embedding jobs that read it as ancient)
        classifier_link="results/{sample}/classifier",
    output:
        predictions="results/{sample}/prediction_results.txt",
        highestscore="results/{sample}/prediction_results_highestscore.csv",
        records="results/{sample}/records.tsv",
        chunks="results/{sample}/chunks.tsv",
        regions="results/{sample}/regions.tsv",
        summary="results/{sample}/summary.txt",
        calls=report(
            "results/{sample}/calls.html",
            caption="../report/calls.rst",
            category="Tables",
            subcategory="{sample}",
            labels={"sample": "{sample}", "table": "calls, viral regions and summary"},
        ),
        fna="results/{sample}/virus.fna",
        regions_fna="results/{sample}/virus_regions.fna",
        distribution=report(
            "results/{sample}/plots/score_distribution.svg",
            caption="../report/score_distribution.rst",
            category="Plots",
            subcategory="{sample}",
            labels={"sample": "{sample}", "figure": "score distribution by call"},
        ),
        length=report(
            "results/{sample}/plots/length_vs_score.svg",
            caption="../report/length_vs_score.rst",
            category="Plots",
            subcategory="{sample}",
            labels={"sample": "{sample}", "figure": "record length against score"},
        ),
        tracks=report(
            "results/{sample}/plots/score_tracks.svg",
            caption="../report/score_tracks.rst",
            category="Plots",
            subcategory="{sample}",
            labels={"sample": "{sample}", "figure": "chunk score tracks"},
        ),
    log:
        "logs/aggregate_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/aggregate_sample/{sample}.tsv"
    threads: CPU_STAGE_THREADS
    params:
        models=lambda wildcards: PLAN.models[wildcards.sample],
        chunk_size=lambda wildcards: samples[wildcards.sample]["chunk_size"],
        chunking=lambda wildcards: samples[wildcards.sample]["chunking"],
        calling=config["calling"],
        regions=config["regions"],
    script:
        "../scripts/aggregate_sample.py"
