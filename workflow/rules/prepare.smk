rule chunk_sequences:
    input:
        fasta=sample_fasta,
    output:
        chunks=intermediate("results/{sample}/prepare/chunks.fa"),
        records="results/{sample}/prepare/input_records.tsv",
        spans=intermediate("results/{sample}/prepare/chunk_spans.tsv"),
    log:
        "logs/chunk_sequences/{sample}.log",
    benchmark:
        "logs/benchmarks/chunk_sequences/{sample}.tsv"
    wildcard_constraints:
        sample=names_pattern(samples),  # a training set's frames: select_training_frames
    params:
        chunk_size=lambda wildcards: samples[wildcards.sample]["chunk_size"],
        mode=lambda wildcards: samples[wildcards.sample]["chunking"],
    script:
        "../scripts/chunk_sequences.py"


rule translate_frames:
    input:
        chunks="results/{sample}/prepare/chunks.fa",
        spans="results/{sample}/prepare/chunk_spans.tsv",
    output:
        nucleotide=intermediate("results/{sample}/prepare/identified_nucleotide.fa"),
        protein=intermediate("results/{sample}/prepare/identified_protein.faa"),
        chunks="results/{sample}/prepare/chunk_frames.tsv",
    log:
        "logs/translate_frames/{sample}.log",
    benchmark:
        "logs/benchmarks/translate_frames/{sample}.tsv"
    wildcard_constraints:
        sample=names_pattern(samples),
    # worker processes; Snakemake lowers this to --cores, set-threads in a profile overrides it
    threads: 8
    script:
        "../scripts/translate_frames.py"


rule shard_frames:
    input:
        nucleotide="results/{sample}/prepare/identified_nucleotide.fa",
        protein="results/{sample}/prepare/identified_protein.faa",
    output:
        frames="results/{sample}/shards/frames.tsv",
        manifest="results/{sample}/shards/manifest.tsv",
    log:
        "logs/shard_frames/{sample}.log",
    benchmark:
        "logs/benchmarks/shard_frames/{sample}.tsv"
    params:
        shards=lambda wildcards: len(SHARDS[wildcards.sample]),
    script:
        "../scripts/shard_frames.py"
