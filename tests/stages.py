"""Run a sample through every stage function in order, as the Snakemake rules do, without
Snakemake: for tests of what the stages write."""

from pathlib import Path
from types import SimpleNamespace

from virnucpro.calling import CallRule
from virnucpro.embed import embed_shard
from virnucpro.models.classifier_header import EMBEDDING_MODELS
from virnucpro.plots import plot_sample
from virnucpro.predict import classify_shard
from virnucpro.prepare import prepare_sample
from virnucpro.regions import RegionSettings
from virnucpro.report import aggregate_sample
from virnucpro.sharding import frame_row, frame_table, shard_name
from virnucpro.virus_fasta import write_virus_fasta


def table(path, header, rows):
    """A hand-written table in the workflow's dialect, for a stage to read."""
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def sample_outputs(out):
    """The paths aggregate_sample writes, named as the rule's outputs are."""
    return SimpleNamespace(
        predictions=out / "prediction_results.txt",
        highestscore=out / "prediction_results_highestscore.csv",
        records=out / "records.tsv",
        chunks=out / "chunks.tsv",
        regions=out / "regions.tsv",
        summary=out / "summary.txt",
    )


def write_frame_table(frames, directory, shards=1, models=EMBEDDING_MODELS):
    """A frame table and its manifest, as the preparing stage writes them, of (frame_id,
    nucleotide, protein) frames in ordinal order; returns their paths."""
    paths = Path(directory) / "frames.tsv", Path(directory) / "manifest.tsv"
    with frame_table(*paths, shards, models) as table:
        table.add(
            "".join(frame_row(*frame) for frame in frames).encode(),
            [len(protein) for _, _, protein in frames],
            [len(nucleotide) for _, nucleotide, _ in frames],
        )
    return paths


def prepared(out, intermediates=False):
    """The paths prepare_sample writes, named as the rule's outputs are; with the original's
    intermediate files where asked for."""
    out = Path(out)
    paths = SimpleNamespace(
        records=out / "prepare" / "input_records.tsv",
        chunks=out / "prepare" / "chunk_frames.tsv",
        parts=out / "prepare" / "parts.tsv",
        frames=out / "shards" / "frames.tsv",
        manifest=out / "shards" / "manifest.tsv",
    )
    if intermediates:
        paths.chunks_fa = out / "prepare" / "chunks.fa"
        paths.nucleotide_fa = out / "prepare" / "identified_nucleotide.fa"
        paths.protein_faa = out / "prepare" / "identified_protein.faa"
    return paths


def run_sample(fasta, models, out, chunk_size=500, mode="overlap", shards=2):
    out = Path(out)
    p = out / "prepare"
    paths = prepared(out)
    prepare_sample(fasta, chunk_size, mode, EMBEDDING_MODELS, shards, paths)
    names = [shard_name(i) for i in range(shards)]
    frames, manifest = paths.frames, paths.manifest
    shards, classifier = [], models[f"classifier_{chunk_size}"]
    for n in names:
        h5 = {kind: out / "embeddings" / f"{n}.{kind}.h5" for kind in ("dnabert_s", "esm2")}
        embed_shard(frames, manifest, n, h5, models, "cpu", classifier_path=classifier)
        classify_shard(list(h5.values()), classifier, out / "scores" / f"{n}.tsv")
        shards.append((out / "scores" / f"{n}.tsv", [h5["dnabert_s"], h5["esm2"]]))
    aggregate_sample(
        "test",
        p / "input_records.tsv",
        p / "chunk_frames.tsv",
        shards,
        sample_outputs(out),
        {
            "classifier": models[f"classifier_{chunk_size}"],
            "chunk_size": chunk_size,
            "chunking": mode,
        },
        CallRule(),
        RegionSettings(),
    )
    write_virus_fasta(fasta, out / "records.tsv", out / "regions.tsv", out / "virus.fna")
    plots = [out / "plots" / f"{name}.svg" for name in ("distribution", "length", "tracks")]
    threshold = CallRule().region_threshold
    plot_sample(
        "test", out / "records.tsv", out / "chunks.tsv", out / "regions.tsv", threshold, *plots
    )
    return out
