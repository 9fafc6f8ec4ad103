rule prepare_sample:
    input:
        fasta=sample_fasta,
    output:
        **intermediate_files("results/{sample}/prepare"),
        input_records="results/{sample}/prepare/input_records.tsv",
        chunk_frames="results/{sample}/prepare/chunk_frames.tsv",
        parts="results/{sample}/prepare/parts.tsv",
        frames="results/{sample}/shards/frames.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
    log:
        "logs/prepare_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/prepare_sample/{sample}.tsv"
    wildcard_constraints:
        sample=names_pattern(samples),  # a training set's frames: select_training_frames
    threads: CPU_STAGE_THREADS
    params:
        chunk_size=lambda wildcards: samples[wildcards.sample]["chunk_size"],
        mode=lambda wildcards: samples[wildcards.sample]["chunking"],
        models=lambda wildcards: PLAN.models[wildcards.sample],
        shards=lambda wildcards: len(PLAN.shards[wildcards.sample]),
    script:
        "../scripts/prepare_sample.py"
