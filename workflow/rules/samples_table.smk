# The report's start page (report/workflow.rst) names the config files read, as its text sees
# the config alone: the workflow's own first, then each --configfile over it, as Snakemake reads
# them (a stable sort keeps the order within each).
config["configfiles_read"] = [
    os.path.relpath(path)
    for path in sorted(
        workflow.configfiles, key=lambda path: path in workflow.overwrite_configfiles
    )
]


rule tabulate_samples:
    input:
        records=expand("results/{sample}/records.tsv", sample=samples),
        summaries=expand("results/{sample}/summary.txt", sample=samples),
    output:
        table="results/samples.tsv",
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
