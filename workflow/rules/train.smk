# Training a classifier on the labelled sets of the training sheet (training.sheet). Each set is
# embedded as the pseudo-sample training/{set}, by the prediction's shard and embedding rules.


localrules:
    train,
    evaluate,


rule select_training_frames:
    input:
        unpack(training_set_input),
    output:
        nucleotide=intermediate(
            "results/training/{set}/prepare/identified_nucleotide.fa"
        ),
        protein=intermediate("results/training/{set}/prepare/identified_protein.faa"),
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
        sets=training_set_params("train"),
        models=config["training"]["models"],
        chunk_size=config["training"]["chunk_size"],
        seed=config["training"]["seed"],
        legacy=config["training"]["legacy"],
    script:
        "../scripts/train_classifier.py"


rule evaluate_classifier:
    input:
        unpack(training_inputs("evaluate")),
        classifier=TRAINED_CLASSIFIER,
    output:
        metrics="results/training/evaluation/metrics.tsv",
        figure="results/training/evaluation/evaluation.svg",
    log:
        "logs/evaluate_classifier.log",
    benchmark:
        "logs/benchmarks/evaluate_classifier.tsv"
    threads: 8
    params:
        sets=training_set_params("evaluate"),
    script:
        "../scripts/evaluate_classifier.py"


# targets, as `all` is the prediction's
rule train:
    input:
        rules.train_classifier.output,


rule evaluate:
    input:
        rules.evaluate_classifier.output,
