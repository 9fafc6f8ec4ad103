rule plot_sample:
    input:
        records="results/{sample}/records.tsv",
        chunks="results/{sample}/chunks.tsv",
        regions="results/{sample}/regions.tsv",
    output:
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
        "logs/plot_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/plot_sample/{sample}.tsv"
    params:
        threshold=CallRule(**config["calling"]).region_threshold,
    script:
        "../scripts/plot_sample.py"


rule tabulate_samples:
    input:
        records=expand("results/{sample}/records.tsv", sample=samples),
        summaries=expand("results/{sample}/summary.txt", sample=samples),
    output:
        table=report(
            "results/samples.tsv",
            caption="../report/samples.rst",
            category="Tables",
            subcategory="all samples",
            labels={"table": "all samples (TSV)"},
        ),
        overview=report(
            "results/samples.html",
            caption="../report/samples.rst",
            category="Tables",
            subcategory="all samples",
            labels={"table": "all samples, with each sample's summary"},
        ),
    log:
        "logs/tabulate_samples.log",
    benchmark:
        "logs/benchmarks/tabulate_samples.tsv"
    params:
        settings={sample: sample_settings(sample) for sample in samples},
    script:
        "../scripts/tabulate_samples.py"
