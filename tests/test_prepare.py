"""The preparing stage in one pass over worker processes: the same tables whatever the number of
workers and blocks, a parts table that says where each block's rows lie, a frame table that
holds exactly the frames of the original's FASTA files, cut into contiguous shards of equal
work."""

import pytest

from virnucpro.errors import InputError
from virnucpro.io import fasta as fasta_module
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.shards import read_shard, shard_name
from virnucpro.io.tables import read_tsv
from virnucpro.planning.sizing import frame_seconds
from virnucpro.stages.prepare import prepare_sample

from conftest import DVF_VALIDATION
from stages import prepared

FASTA = DVF_VALIDATION[1]  # 100 real 3 kb viral fragments
TABLES = ("input_records", "chunk_frames", "frames", "manifest")


def prepare(tmp_path, name, workers=1, shards=3, models=EMBEDDING_MODELS, fasta=FASTA):
    outputs = prepared(tmp_path / name, intermediates=True)
    prepare_sample(fasta, 300, "overlap", models, shards, outputs, workers)
    return outputs


def test_the_tables_do_not_depend_on_workers_or_blocks(tmp_path, monkeypatch):
    one = prepare(tmp_path, "one")
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", 20_000)
    many = prepare(tmp_path, "many", workers=3)
    for name in (*TABLES, "chunks_fa", "nucleotide_fa", "protein_faa"):
        assert getattr(one, name).read_bytes() == getattr(many, name).read_bytes(), name
    assert len(list(read_tsv(one.parts))) == 1 < len(list(read_tsv(many.parts)))


def test_the_parts_say_where_each_block_lies(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", 20_000)
    out = prepare(tmp_path, "out", workers=2)
    parts = list(read_tsv(out.parts))
    text = FASTA.read_bytes()
    records, chunks = out.input_records.read_bytes(), out.chunk_frames.read_bytes()
    header = {"records": records.index(b"\n") + 1, "chunks": chunks.index(b"\n") + 1}
    ends = {"records": header["records"], "chunks": header["chunks"], "text": 0, "ordinal": 0}
    for part in parts:
        for table, data in (("records", records), ("chunks", chunks)):
            start, end = int(getattr(part, f"{table}_start")), int(getattr(part, f"{table}_end"))
            assert start == ends[table]
            assert data[start:end].count(b"\n") == int(getattr(part, table))
            ends[table] = end
        start, end = int(part.text_start), int(part.text_end)
        assert start == ends["text"] and text[start : start + 1] == b">"
        assert text[start:end].count(b">") == int(part.records)
        ends["text"] = end
        assert int(part.first_ordinal) == ends["ordinal"]
        ends["ordinal"] += int(part.frames)
    assert (ends["records"], ends["chunks"]) == (len(records), len(chunks))
    assert ends["text"] == len(text)
    assert ends["ordinal"] == sum(1 for _ in read_tsv(out.frames))


def test_the_frame_table_holds_the_original_frames_in_contiguous_shards(tmp_path):
    out = prepare(tmp_path, "out")
    # the original's frame files: two lines a frame, `>id` and its sequence
    nucleotides = out.nucleotide_fa.read_text().splitlines()
    proteins = out.protein_faa.read_text().splitlines()
    assert nucleotides[::2] == proteins[::2]
    ids = [header[1:] for header in nucleotides[::2]]
    expected = list(zip(ids, nucleotides[1::2], proteins[1::2], strict=True))
    found, work = [], []
    for shard in range(3):
        ordinals, ids, nucleotides, proteins = read_shard(
            out.frames, out.manifest, shard_name(shard)
        )
        assert ordinals.tolist() == list(range(len(found), len(found) + len(ids)))
        found += zip(ids, nucleotides, proteins, strict=True)
        residues, bases = [len(p) for p in proteins], [len(n) for n in nucleotides]
        work.append(frame_seconds(residues, bases, EMBEDDING_MODELS).sum())
    assert found == expected
    most = frame_seconds([100], [301], EMBEDDING_MODELS)[0]  # a frame of a 300 bp chunk
    assert max(work) - min(work) <= 2 * most


def test_the_shards_are_cut_by_the_work_of_the_models_used(tmp_path):
    both = prepare(tmp_path, "both")
    alone = prepare(tmp_path, "alone", models=("dnabert_s",))
    assert both.frames.read_bytes() == alone.frames.read_bytes()
    assert both.manifest.read_bytes() != alone.manifest.read_bytes()


def test_ids_repeated_in_other_blocks_stop_the_stage_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", 256)
    records = "".join(f">r{i}\nATGAAACCC\n" for i in range(200))
    fasta = tmp_path / "repeated.fa"
    fasta.write_text(records + ">r7 again\nATG\n>r150\nATG\n")
    with pytest.raises(InputError, match=r"2 record id\(s\) occur more than once: r7 \(x2\), r150"):
        prepare(tmp_path, "out", workers=2, fasta=fasta)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_the_first_bad_record_in_input_order_is_the_one_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", 64)
    records = [f">r{i}\nATGAAACCC\n" for i in range(100)]
    records[30], records[70] = ">r30\nATGUUU\n", ">r70\nATG-AAA\n"
    fasta = tmp_path / "bad.fa"
    fasta.write_text("".join(records))
    with pytest.raises(InputError, match=r"record 'r30' \(number 31\)"):
        prepare(tmp_path, "out", workers=2, fasta=fasta)
