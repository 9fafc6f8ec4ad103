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
