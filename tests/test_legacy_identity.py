"""`legacy` mode writes byte for byte what the original algorithm writes (SPEC §1-§2), on every
real fragment in tests/data/dvf, at both chunk sizes, translated in this process and by worker
processes."""

import pytest

from virnucpro import prepare
from virnucpro.prepare import chunk_sample, translate_sample

from conftest import DVF_VALIDATION
from reference import original


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("chunk_size", [300, 500])
@pytest.mark.parametrize("fasta", DVF_VALIDATION, ids=[p.stem for p in DVF_VALIDATION])
def test_legacy_outputs_are_identical_to_the_original(
    tmp_path, monkeypatch, fasta, chunk_size, workers
):
    monkeypatch.setattr(prepare, "BLOCK_CHUNKS", 97)  # many blocks, the last one partial
    ref = tmp_path / "reference"
    ref.mkdir()
    original.write_chunk_file(fasta, ref / "chunks.fa", chunk_size)
    original.write_frame_files(ref / "chunks.fa", ref / "nucleotide.fa", ref / "protein.faa")

    ours = tmp_path / "ours"
    chunk_sample(
        fasta, chunk_size, "legacy", ours / "chunks.fa", ours / "records.tsv", ours / "spans.tsv"
    )
    translate_sample(
        ours / "chunks.fa",
        ours / "spans.tsv",
        ours / "nucleotide.fa",
        ours / "protein.faa",
        ours / "chunks.tsv",
        workers=workers,
    )

    for name in ("chunks.fa", "nucleotide.fa", "protein.faa"):
        expected = (ref / name).read_bytes()
        assert expected, f"the reference wrote an empty {name}"
        assert (ours / name).read_bytes() == expected, name
    n_frames = (ref / "protein.faa").read_text().count(">")
    n_chunks = (ref / "chunks.fa").read_text().count(">")
    assert 0 < n_frames < 6 * n_chunks


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_and_spans_that_disagree_are_an_error_naming_both(tmp_path, workers):
    chunks, spans = tmp_path / "chunks.fa", tmp_path / "spans.tsv"
    chunks.write_text(">a_chunk_1\nATGAAA\n>b_chunk_1\nATGCCC\n")
    outputs = [tmp_path / name for name in ("n.fa", "p.faa", "chunks.tsv")]
    header = "chunk_id\trecord_id\tstart\tend\n"
    spans.write_text(header + "a_chunk_1\ta\t1\t6\nc_chunk_1\tc\t1\t6\n")
    with pytest.raises(ValueError, match=r"chunks.fa and .*spans.tsv disagree at chunk b_chunk_1"):
        translate_sample(chunks, spans, *outputs, workers=workers)
    spans.write_text(header + "a_chunk_1\ta\t1\t6\nb_chunk_1\tb\t1\t6\nc_chunk_1\tc\t1\t6\n")
    with pytest.raises(ValueError, match=r"spans.tsv has more rows than .*chunks.fa has chunks"):
        translate_sample(chunks, spans, *outputs, workers=workers)
    assert not any(path.exists() for path in outputs)  # nothing half-written
