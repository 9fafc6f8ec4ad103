# Training a classifier on the labelled sets of the training sheet (training.sheet). Each set is
# embedded as the pseudo-sample training/{set}, by the prediction's shard and embedding rules.


rule select_training_frames:
    input:
        unpack(training_set_input),
    output:
        **intermediate_files("results/training/{set}/prepare", chunks=False),
        frames="results/training/{set}/shards/frames.tsv",
        manifest="results/training/{set}/shards/manifest.tsv",
        labels="results/training/{set}/labels.tsv",
    log:
        "logs/select_training_frames/{set}.log",
    benchmark:
        "logs/benchmarks/select_training_frames/{set}.tsv"
    wildcard_constraints:
        set=names_pattern(name.removeprefix("training/") for name in training_sets),
    params:
        label=lambda wildcards: training_sets[f"training/{wildcards.set}"]["label"],
        chunk_size=config["training"]["chunk_size"],
        models=config["training"]["models"],
        shards=lambda wildcards: len(PLAN.shards[f"training/{wildcards.set}"]),
    script:
        "../scripts/select_training_frames.py"


rule train_classifier:
    input:
        unpack(training_inputs("train")),
    output:
        classifier=TRAINED_CLASSIFIER,
        history="results/training/history.tsv",
        metrics="results/training/metrics.tsv",
    log:
        "logs/train_classifier.log",
    benchmark:
        "logs/benchmarks/train_classifier.tsv"
    threads: 8
    resources:
        gpu=1,  # where there is one (embedding.device): the fit is a GPU's work
    params:
        sets=PLAN.set_fields("train"),
        models=config["training"]["models"],
        chunk_size=config["training"]["chunk_size"],
        seed=config["training"]["seed"],
        legacy=config["training"]["legacy"],
    script:
        "../scripts/train_classifier.py"


# The training run's tables as pages the report shows in place (it offers a table only as a
# download), in a job of their own: a new page does not train again.
rule training_run_pages:
    input:
        rules.train_classifier.output.history,
        rules.train_classifier.output.metrics,
    output:
        report(
            "results/training/history.html",
            caption="../report/training_history.rst",
            category="Training",
            subcategory="training run",
            labels={"classifier": TRAINED, "result": "loss and metrics by epoch"},
        ),
        report(
            "results/training/metrics.html",
            caption="../report/training_metrics.rst",
            category="Training",
            subcategory="training run",
            labels={"classifier": TRAINED, "result": "metrics on the held-out frames"},
        ),
    log:
        "logs/training_run_pages.log",
    script:
        "../scripts/table_pages.py"


rule evaluate_classifier:
    input:
        unpack(evaluation_inputs),
    output:
        metrics="results/training/evaluation/{classifier}/metrics.tsv",
        page=report(
            "results/training/evaluation/{classifier}/metrics.html",
            caption="../report/evaluation_metrics.rst",
            category="Training",
            subcategory="{classifier}",
            labels={
                "classifier": "{classifier}",
                "result": "metrics overall and by length",
            },
        ),
        figure=report(
            "results/training/evaluation/{classifier}/evaluation.svg",
            caption="../report/evaluation_figure.rst",
            category="Training",
            subcategory="{classifier}",
            labels={"classifier": "{classifier}", "result": "ROC, PR and reliability"},
        ),
    log:
        "logs/evaluate_classifier/{classifier}.log",
    benchmark:
        "logs/benchmarks/evaluate_classifier/{classifier}.tsv"
    wildcard_constraints:
        classifier=names_pattern(PLAN.evaluated),
    threads: 8
    params:
        sets=lambda wildcards: evaluation_sets(wildcards.classifier),
    script:
        "../scripts/evaluate_classifier.py"


rule tabulate_evaluation:
    input:
        metrics=expand(
            "results/training/evaluation/{classifier}/metrics.tsv",
            classifier=PLAN.evaluated,
        ),
    output:
        table="results/training/evaluation/classifiers.tsv",
        page=report(
            "results/training/evaluation/classifiers.html",
            caption="../report/classifiers.rst",
            category="Training",
            subcategory="all classifiers",
            labels={"classifier": "all", "result": "overall metrics of each"},
        ),
    log:
        "logs/tabulate_evaluation.log",
    benchmark:
        "logs/benchmarks/tabulate_evaluation.tsv"
    params:
        classifiers={name: c["path"] for name, c in PLAN.evaluated.items()},
    script:
        "../scripts/tabulate_evaluation.py"


# targets (run by Snakemake itself, as rules with nothing to run); `all` also evaluates where
# the training sheet has evaluate sets
rule train:
    input:
        rules.train_classifier.output,
        rules.training_run_pages.output,


rule evaluate:
    input:
        rules.tabulate_evaluation.output,
        expand(rules.evaluate_classifier.output, classifier=PLAN.evaluated),
