"""Input handling: each kind of odd input gives either a clear error naming the file, the
record and the fix, or a documented result listed in records.tsv with its reason."""

import gzip
import random

import pytest
from Bio.Seq import Seq
from xopen import xopen

from virnucpro.io import fasta as fasta_module
from virnucpro.io.fasta import InputError, block_records, read_blocks, read_records
from virnucpro.io.tables import read_tsv

from conftest import fastq
from stages import run_sample

GENE = "ATGGCTAGCAAAGGAGAAGAACTTTTCACTGGAGTTGTCCCAATTCTTGTTGAATTAGATGGTGATGTTAATGGGCAC" * 3
TYPICAL = (
    ">lower a description that is dropped\n" + GENE.lower()[:120] + "\n" + GENE.lower()[120:] + "\n"
    ">iupac\n" + GENE[:60] + "NNRYKMSWBDHV" + GENE[60:] + "\n"
    ">two_bases\nAC\n"
    ">empty\n"
    ">after_empty\n" + GENE + "\n"
)


def write(path, text, compress=False):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def records(path):
    return [(r.id, r.sequence) for r in read_records(path)]


def wrap(sequence):
    """A FASTA record's sequence lines, 60 letters each."""
    return [sequence[i : i + 60] for i in range(0, len(sequence), 60)]


def test_gzip_windows_line_endings_and_plain_text_read_the_same(tmp_path):
    plain = records(write(tmp_path / "plain.fa", TYPICAL))
    assert records(write(tmp_path / "zipped.fa.gz", TYPICAL, compress=True)) == plain
    assert records(write(tmp_path / "unnamed_gzip", TYPICAL, compress=True)) == plain
    assert records(write(tmp_path / "crlf.fa", TYPICAL.replace("\n", "\r\n"))) == plain
    assert [rid for rid, _ in plain] == ["lower", "iupac", "two_bases", "empty", "after_empty"]
    assert plain[0][1] == GENE.lower()  # case kept: the chunk file holds it as given


@pytest.mark.parametrize("fmt", [None, "gz", "bz2", "xz", "zst"])
@pytest.mark.parametrize(
    ("start", "newline", "end"),
    [("", "\n", ""), ("\ufeff\n\n", "\r\n", "\r\n\r\n"), ("", "\r", "")],
    ids=["lf", "bom-blank-lines-crlf", "cr"],
)
def test_fastq_reads_as_the_same_records_as_fasta(tmp_path, fmt, start, newline, end):
    """Told by content: the name says FASTA, and another compression than the file's."""
    plain = records(write(tmp_path / "plain.fa", TYPICAL))
    path = tmp_path / ("reads.fa.bz2" if fmt == "gz" else "reads.fa.gz")
    with xopen(path, "wb", format=fmt, threads=0) if fmt else open(path, "wb") as handle:
        handle.write((start + fastq(plain, newline) + end).encode())
    assert records(path) == plain


def test_every_record_is_listed_with_a_reason_when_unscored(tmp_path, demo_models):
    fasta = write(tmp_path / "in.fa.gz", TYPICAL, compress=True)
    out = run_sample(fasta, demo_models, tmp_path / "out")
    rows = {r.record_id: r for r in read_tsv(out / "records.tsv")}
    assert list(rows) == ["lower", "iupac", "two_bases", "empty", "after_empty"]
    assert rows["empty"].call == "unscored" and rows["empty"].reason == "empty sequence"
    assert rows["empty"].chunks == "0"
    assert rows["two_bases"].call == "unscored"
    assert rows["two_bases"].reason == "shorter than one codon"
    for scored in ("lower", "iupac", "after_empty"):
        assert rows[scored].call in {"virus", "others"} and rows[scored].reason == ""
    frames = (out / "prediction_results.txt").read_text().splitlines()[1:]
    assert any(line.startswith("lower_chunk_1F1\t") for line in frames)  # lowercase translated
    proteins = {row.frame_id: row.protein for row in read_tsv(out / "shards" / "frames.tsv")}
    # the four codons holding IUPAC letters are dropped, so frame 1 reads as the gene alone
    assert proteins["iupac_chunk_1F1"] == str(Seq(GENE).translate())


def test_an_empty_file_gives_empty_outputs(tmp_path, demo_models):
    out = run_sample(write(tmp_path / "empty.fa", ""), demo_models, tmp_path / "out")
    assert (
        out / "prediction_results.txt"
    ).read_text() == "Sequence_ID\tPrediction\tscore1\tscore2\n"
    assert (out / "prediction_results_highestscore.csv").read_text() == "Modified_ID\tIs_Virus\n"
    assert list(read_tsv(out / "records.tsv")) == []
    assert "records: 0" in (out / "summary.txt").read_text()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            ">a\nACGT\n>b\nACGT\n>a\nACGT\n>b x\nAC\n>c\nA\n",
            ["2 record id(s) occur more than once", "a (x2)", "b (x2)", "seqkit rename"],
        ),
        (">p1\nMKTAYIAKQRQISFVKSHFSRQ\n", ["'p1'", "protein", "nucleotide sequences"]),
        (">r1\nACGUACGU\n", ["'r1'", "'U'", "RNA", "sed"]),
        (">g1\nACG--TAC\n", ["'g1'", "gaps"]),
        ("sample_id\tread_count\nS1\t100\n", ["not a FASTA or FASTQ file", "sample_id"]),
        (">\nACGT\n", ["record 1 has an empty header"]),
    ],
    ids=["duplicate-ids", "protein", "rna", "alignment-gaps", "not-fasta", "empty-header"],
)
def test_bad_input_is_an_error_naming_file_record_and_fix(tmp_path, text, needles):
    path = write(tmp_path / "bad.fa", text)
    with pytest.raises(InputError) as error:
        records(path)
    message = str(error.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("kind", ["fasta", "fastq"])
def test_blocks_of_any_size_read_as_the_whole_file(tmp_path, monkeypatch, newline, kind):
    """The preparing stage's reader cuts the file into blocks of whole records: together they
    are the file, and their records, record numbers and line numbers are the whole file's."""
    rng = random.Random(len(newline))
    for size in (1, 2, 5, 17, 64, 300):
        monkeypatch.setattr(fasta_module, "BLOCK_BYTES", size)
        pairs = [
            (f"r{i}", "".join(rng.choices("ACGT", k=rng.randrange(0, 200))))
            for i in range(rng.randrange(1, 30))
        ]
        described = [(f"{rid} description", sequence) for rid, sequence in pairs]
        if kind == "fastq":
            body = fastq(described, newline)
        else:
            body = "".join(
                newline.join([f">{header}", *wrap(sequence)]) + newline
                for header, sequence in described
            )
        text = "\ufeff" + newline + body  # a byte-order mark and a blank line first
        path = write(tmp_path / "in.fa", text)
        blocks = list(read_blocks(path))
        assert b"".join(block.data for block in blocks) == text.encode()
        numbered = [
            (number, (record.id, record.sequence))
            for block in blocks
            for number, record in enumerate(block_records(block, path), block.first_record)
        ]
        assert numbered == list(enumerate(pairs, start=1))
        lines = 1 + text.count(newline)
        assert [block.first_line for block in blocks[1:]] == [
            1 + text.encode()[: block.start].count(newline.encode()) for block in blocks[1:]
        ]
        assert blocks[-1].first_line <= lines
