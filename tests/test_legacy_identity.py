"""`legacy` mode writes byte for byte what the original algorithm writes (SPEC §1-§2), on every
record of the shared DeepVirFinder fragments, at both chunk sizes."""

import pytest

from virnucpro.prepare import chunk_sample, translate_sample

from conftest import DVF
from reference import original

DVF_FILES = sorted(DVF.glob("*.fa"))


@pytest.mark.parametrize("chunk_size", [300, 500])
@pytest.mark.parametrize("fasta", DVF_FILES, ids=[p.stem for p in DVF_FILES])
def test_legacy_outputs_are_identical_to_the_original(tmp_path, fasta, chunk_size):
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
    )

    for name in ("chunks.fa", "nucleotide.fa", "protein.faa"):
        expected = (ref / name).read_bytes()
        assert expected, f"the reference wrote an empty {name}"
        assert (ours / name).read_bytes() == expected, name
    n_frames = (ref / "protein.faa").read_text().count(">")
    n_chunks = (ref / "chunks.fa").read_text().count(">")
    assert 0 < n_frames < 6 * n_chunks
