# Training a classifier on the labelled sets of the training sheet (training.sheet). Each set is
# embedded as the pseudo-sample training/{set}, by the prediction's shard and embedding rules.


def training_set_input(wildcards):
    """The set's FASTA, and its GenBank file where the sheet gives one."""
    row = training_sets[f"training/{wildcards.set}"]
    return {key: row[key] for key in ("fasta", "genbank") if key in row}


def training_set_params(role):
    """train_run.TrainingSet fields of each set of a role: its embedding files shard by shard
    (each shard's in features order), its labels table, its label and FASTA (SPEC order).
    """
    per_shard = len(config["training"]["models"])
    sets = []
    for name in training_sets_of(role):
        files = embedding_files(name)
        sets.append(
            {
                "shards": [
                    files[i : i + per_shard] for i in range(0, len(files), per_shard)
                ],
                "labels_tsv": f"results/{name}/labels.tsv",
                "label": training_sets[name]["label"],
                "fasta": training_sets[name]["fasta"],
            }
        )
    return sets


def training_inputs(role):
    """The embedding files and labels tables of the sets of a role."""
    sets = training_set_params(role)
    return {
        "embeddings": [path for s in sets for shard in s["shards"] for path in shard],
        "labels": [s["labels_tsv"] for s in sets],
    }


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
        **training_inputs("train"),
    output:
        classifier="results/training/classifier.safetensors",
        history="results/training/history.tsv",
        metrics="results/training/metrics.tsv",
    log:
        "logs/train_classifier.log",
    benchmark:
        "logs/benchmarks/train_classifier.tsv"
    threads: 8
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
        **training_inputs("evaluate"),
        classifier="results/training/classifier.safetensors",
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
