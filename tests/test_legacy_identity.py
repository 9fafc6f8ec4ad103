"""`legacy` mode writes byte for byte what the original algorithm writes (SPEC §1-§2), on every
real fragment in tests/data/dvf, at both chunk sizes, prepared in this process and by worker
processes, in many blocks."""

import pytest

from virnucpro.io import fasta as fasta_module
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.stages.prepare import prepare_sample

from conftest import DVF_VALIDATION
from reference import original
from stages import prepared


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("chunk_size", [300, 500])
@pytest.mark.parametrize("fasta", DVF_VALIDATION, ids=[p.stem for p in DVF_VALIDATION])
def test_legacy_outputs_are_identical_to_the_original(
    tmp_path, monkeypatch, fasta, chunk_size, workers
):
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", 40_000)  # many blocks, the last one partial
    ref = tmp_path / "reference"
    ref.mkdir()
    original.write_chunk_file(fasta, ref / "chunks.fa", chunk_size)
    original.write_frame_files(ref / "chunks.fa", ref / "nucleotide.fa", ref / "protein.faa")

    ours = prepared(tmp_path / "ours", intermediates=True)
    prepare_sample(fasta, chunk_size, "legacy", EMBEDDING_MODELS, 2, ours, workers=workers)

    for name, path in (
        ("chunks.fa", ours.chunks_fa),
        ("nucleotide.fa", ours.nucleotide_fa),
        ("protein.faa", ours.protein_faa),
    ):
        expected = (ref / name).read_bytes()
        assert expected, f"the reference wrote an empty {name}"
        assert path.read_bytes() == expected, name
    n_frames = (ref / "protein.faa").read_text().count(">")
    n_chunks = (ref / "chunks.fa").read_text().count(">")
    assert 0 < n_frames < 6 * n_chunks
