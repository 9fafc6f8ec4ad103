"""Run a sample through every stage function in order, as the Snakemake rules do, without
Snakemake: for tests of what the stages write."""

import io
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from virnucpro.calls.calling import CallRule
from virnucpro.calls.parts import PartRows
from virnucpro.calls.regions import RegionSettings
from virnucpro.calls.scoring import SCORED_WITH, classifier_digest
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.h5store import embedding_writer
from virnucpro.io.prepared import CHUNK_FRAME_COLUMNS, INPUT_RECORD_COLUMNS, PART_COLUMNS
from virnucpro.io.shards import MANIFEST_COLUMNS, frame_row, frame_table, shard_name
from virnucpro.io.tables import tsv_writer
from virnucpro.stages.aggregate import aggregate_sample
from virnucpro.stages.embed import embed_shard
from virnucpro.stages.outputs import write_sample_outputs
from virnucpro.stages.prepare import prepare_sample


def table(path, header, rows):
    """A hand-written table in the workflow's dialect, for a stage to read."""
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def _rows_text(rows):
    """Rows as tables.tsv_writer writes them (a field holding '"' quoted), as prepare does."""
    text = io.StringIO()
    tsv_writer(text).writerows(rows)
    return text.getvalue()


def prepared_by_hand(directory, records, chunks, scores, classifier, part_records=1, shards=1):
    """The prepare tables, parts table, manifest and embedding files (one model's, with the
    scores its job stored for `classifier`) that the stages before the aggregation would write
    for hand-written `records` and `chunks` (rows of io.prepared's INPUT_RECORD_COLUMNS and
    CHUNK_FRAME_COLUMNS) and `scores`, (others, virus) of each kept frame in order: parts of
    `part_records` records, `shards` shards of about as many frames, each file listing its
    frames in reverse, as the embedding job's own order does not follow the input's. Returns
    the paths as prepared() names them, and each shard's embedding files."""
    paths = prepared(directory)
    paths.input_records.parent.mkdir(parents=True, exist_ok=True)
    paths.manifest.parent.mkdir(parents=True, exist_ok=True)
    frame_ids = [c[0] + name for c in chunks for name in (c[5].split(",") if c[5] else [])]
    assert len(frame_ids) == len(scores)
    texts = {
        "records": _rows_text([INPUT_RECORD_COLUMNS]),
        "chunks": _rows_text([CHUNK_FRAME_COLUMNS]),
    }
    parts, frames, next_chunk = [], 0, 0
    for number, start in enumerate(range(0, len(records), part_records)):
        part_rows = records[start : start + part_records]
        n_chunks = sum(int(r[2]) for r in part_rows)
        part_chunks = chunks[next_chunk : next_chunk + n_chunks]
        n_frames = sum(len(c[5].split(",")) for c in part_chunks if c[5])
        row = [number, len(part_rows), n_chunks, n_frames, frames]
        for name, rows in (("records", part_rows), ("chunks", part_chunks)):
            at = len(texts[name].encode())
            texts[name] += _rows_text(rows)
            row += [at, len(texts[name].encode())]
        parts.append((*row, 0, 0, 1))
        frames, next_chunk = frames + n_frames, next_chunk + n_chunks
    paths.input_records.write_text(texts["records"])
    paths.chunk_frames.write_text(texts["chunks"])
    table(paths.parts, PART_COLUMNS, parts)
    cuts = np.linspace(0, len(frame_ids), shards + 1).round().astype(int).tolist()
    manifest, embeddings = [], []
    for i, (first, end) in enumerate(itertools.pairwise(cuts)):
        manifest.append((shard_name(i), end - first, first, 0.0, 0, 0, 0))
        ordinals = list(range(end - 1, first - 1, -1))
        path = directory / "embeddings" / f"{shard_name(i)}.esm2.h5"
        with embedding_writer(path, ordinals, [frame_ids[o] for o in ordinals]) as out:
            out.vectors(4, np.float32)
            out.write(0, np.zeros((len(ordinals), 4), dtype=np.float32))
            out.store("scores", np.array([scores[o] for o in ordinals], np.float32).reshape(-1, 2))
            out.attrs.update(
                model="m", model_path="m.pt", random_weights=False, precision="fp32", device="cpu"
            )
            out.attrs[SCORED_WITH] = classifier_digest(classifier)
        embeddings.append([path])
    table(paths.manifest, MANIFEST_COLUMNS, manifest)
    return paths, embeddings


def part_rows_by_hand(fasta, records_tsv, regions_tsv, directory):
    """A parts table of one part holding every record of `fasta`, and where that part's rows
    lie in hand-written records and regions tables (parts.PartRows), for write_virus_fasta."""
    size = {path: len(Path(path).read_bytes()) for path in (records_tsv, regions_tsv)}
    header = {path: len(Path(path).read_bytes().split(b"\n")[0]) + 1 for path in size}
    records = Path(records_tsv).read_text().count("\n") - 1
    text = len(Path(fasta).read_bytes())
    parts = table(
        directory / "parts.tsv", PART_COLUMNS, [(0, records, 0, 0, 0, 0, 0, 0, 0, 0, text, 1)]
    )
    rows = PartRows(
        0, header[records_tsv], size[records_tsv], header[regions_tsv], size[regions_tsv]
    )
    return parts, [rows]


def sample_outputs(out):
    """The paths aggregate_sample writes, named as the rule's outputs are."""
    return SimpleNamespace(
        predictions=out / "prediction_results.txt",
        highestscore=out / "prediction_results_highestscore.csv",
        records=out / "records.tsv",
        chunks=out / "chunks.tsv",
        regions=out / "regions.tsv",
        summary=out / "summary.txt",
        fna=out / "virus.fna",
        regions_fna=out / "virus_regions.fna",
        calls=out / "calls.html",
        distribution=out / "plots" / "distribution.svg",
        length=out / "plots" / "length.svg",
        tracks=out / "plots" / "tracks.svg",
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
        input_records=out / "prepare" / "input_records.tsv",
        chunk_frames=out / "prepare" / "chunk_frames.tsv",
        parts=out / "prepare" / "parts.tsv",
        frames=out / "shards" / "frames.tsv",
        manifest=out / "shards" / "manifest.tsv",
    )
    if intermediates:
        paths.chunks_fa = out / "prepare" / "chunks.fa"
        paths.nucleotide_fa = out / "prepare" / "identified_nucleotide.fa"
        paths.protein_faa = out / "prepare" / "identified_protein.faa"
    return paths


def run_sample(fasta, models, out, chunk_size=500, mode="overlap", shards=2, workers=1):
    out = Path(out)
    paths = prepared(out)
    prepare_sample(fasta, chunk_size, mode, EMBEDDING_MODELS, shards, paths, workers=workers)
    embeddings, classifier = [], models[f"classifier_{chunk_size}"]
    for n in [shard_name(i) for i in range(shards)]:
        h5 = {kind: out / "embeddings" / f"{n}.{kind}.h5" for kind in ("dnabert_s", "esm2")}
        embed_shard(paths.frames, paths.manifest, n, h5, models, "cpu", classifier_path=classifier)
        embeddings.append([h5["dnabert_s"], h5["esm2"]])
    outputs = sample_outputs(out)
    rows = aggregate_sample(
        "test",
        paths,
        embeddings,
        outputs,
        {"classifier": classifier, "chunk_size": chunk_size, "chunking": mode},
        CallRule(),
        RegionSettings(),
        workers=workers,
    )
    write_sample_outputs("test", fasta, paths.parts, outputs, rows, CallRule(), outputs, workers)
    return out
