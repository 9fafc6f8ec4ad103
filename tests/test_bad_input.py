"""The bad-input matrix: every odd or broken input either completes with each of its records
listed in records.tsv (with a reason where it has no score), or stops with an error that names
the file, the record (or row and column, or key) and the fix, leaving no output behind.

Most cases run the stage functions (tests/stages.py); one Snakemake run takes a sample sheet
of good samples beside bad ones, and two dry runs show that sheet and config errors reach the
user as written."""

import bz2
import gzip
import random

import pytest
from xopen import xopen

from virnucpro.errors import InputError
from virnucpro.io import fasta as fasta_module
from virnucpro.io.classifier_header import EMBEDDING_MODELS
from virnucpro.io.fasta import read_records
from virnucpro.io.tables import read_tsv
from virnucpro.planning.sample_sheet import read_sample_sheet
from virnucpro.planning.schema_check import load_schema, problems
from virnucpro.planning.sizing import estimated_seconds
from virnucpro.sequences.chunking import chunk_spans
from virnucpro.stages.prepare import prepare_sample

from conftest import DEMO_FA, DVF_VALIDATION, REPO, fastq
from stages import prepared, run_sample
from workflow_runs import DEMO, set_config, snakemake

TRAINING_SCHEMA = REPO / "workflow" / "schemas" / "training.schema.yaml"
SHEET_SCHEMA = REPO / "workflow" / "schemas" / "samples.schema.yaml"
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# 8 real 3 kb fragments; each has a chunk of 500 bp with a stop-free frame, so each is scored
REAL = [(r.id, r.sequence) for r in read_records(DEMO_FA)]
TWO = REAL[:2]
TWO_SCORED = [(rid, len(sequence), "scored") for rid, sequence in TWO]
# a coding sequence whose first frame is stop-free: a record of it is always scored
GENE = "ATGGCTAGCAAAGGAGAAGAACTTTTCACTGGAGTTGTCCCAATTCTTGTTGAATTAGATGGTGATGTTAATGGGCAC" * 3
SCORED = ""  # the reason column of a scored record
NO_CODON = "no codon of only A, C, G and T"
TOO_SHORT = "shorter than one codon"
ALL_STOPS = "no stop-free frame"


def fasta(records, newline="\n"):
    """FASTA text, 60 letters a line."""
    lines = []
    for header, sequence in records:
        lines.append(f">{header}")
        lines += [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    return "".join(line + newline for line in lines)


def write(path, text, fmt=None):
    """Write text (or bytes) as a file, compressed with xopen's format name `fmt`."""
    data = text.encode() if isinstance(text, str) else text
    with xopen(path, "wb", format=fmt, threads=0) if fmt else open(path, "wb") as handle:
        handle.write(data)
    return path


def listed(out):
    """(record_id, length, reason) of each row of records.tsv, 'scored' in place of the empty
    reason of a scored record (whose call must then be virus or others)."""
    rows = list(read_tsv(out / "records.tsv"))
    for row in rows:
        assert (row.call in {"virus", "others"}) == (row.reason == SCORED), row
    return [(row.record_id, int(row.length), row.reason or "scored") for row in rows]


# Inputs that complete: (file text or bytes, compression, the rows records.tsv must list).
IUPAC = GENE[:60] + "NNRYKMSWBDHV" + GENE[60:]
ODD_IDS = [
    ("id_before_a_space and a description\tafter a tab", "id_before_a_space"),
    ("no-break\u00a0space", "no-break"),  # any whitespace ends an id, as Biopython splits it
    ("gi|12345|ref|NC_000001.1|", "gi|12345|ref|NC_000001.1|"),
    ("q\"uote's;semi,comma(paren)[bracket]{brace}=eq+plus", None),
    ("été_µ_日本", None),
    ("long_" + "L" * 5000, None),
]
COMPLETES = {
    "empty-file": ("", None, []),
    "header-only": (
        ">only_a_header\n>after_it\n" + GENE + "\n",
        None,
        [
            ("only_a_header", 0, "empty sequence"),
            ("after_it", len(GENE), "scored"),
        ],
    ),
    "iupac-codes": (fasta([("iupac", IUPAC)]), None, [("iupac", len(IUPAC), "scored")]),
    "all-n": (
        fasta([("all_n", "N" * 700), ("all_n_short", "NN")]),
        None,
        [
            ("all_n", 700, NO_CODON),
            ("all_n_short", 2, TOO_SHORT),
        ],
    ),
    "soft-masked": (fasta((rid, sequence.lower()) for rid, sequence in TWO), None, TWO_SCORED),
    "crlf": (fasta(TWO, "\r\n"), None, TWO_SCORED),
    "cr-only": (fasta(TWO, "\r"), None, TWO_SCORED),
    "bom": ("\ufeff" + fasta(TWO), None, TWO_SCORED),
    "gzip": (fasta(TWO), "gz", TWO_SCORED),
    "bzip2": (fasta(TWO), "bz2", TWO_SCORED),
    "xz": (fasta(TWO), "xz", TWO_SCORED),
    "zstd": (fasta(TWO), "zst", TWO_SCORED),
    "zstd-bom-crlf": ("\ufeff" + fasta(TWO, "\r\n"), "zst", TWO_SCORED),
    "odd-ids": (
        fasta([(header, GENE) for header, _ in ODD_IDS]),
        None,
        [(rid or header, len(GENE), "scored") for header, rid in ODD_IDS],
    ),
    # chunk ids end in _chunk_<k>, so a record named like another's chunk collides with nothing:
    # chunks.tsv and records.tsv give each chunk's record, and no id is parsed back
    "colliding-ids": (
        fasta([("a", GENE * 3), ("a_chunk_1", GENE), ("a_chunk_2", GENE)]),
        None,
        [
            ("a", len(GENE) * 3, "scored"),
            ("a_chunk_1", len(GENE), "scored"),
            ("a_chunk_2", len(GENE), "scored"),
        ],
    ),
    # FASTQ: read as the same records would be as FASTA, each quality line starting with '@' or
    # '+'; an empty read (as trimmers leave) is listed as an empty FASTA record is
    "fastq-odd-reads": (
        fastq(
            [("empty_read", ""), ("iupac", IUPAC), ("all_n", "N" * 700), ("all_n_short", "NN")]
            + [(header, GENE) for header, _ in ODD_IDS]
        ),
        "gz",
        [
            ("empty_read", 0, "empty sequence"),
            ("iupac", len(IUPAC), "scored"),
            ("all_n", 700, NO_CODON),
            ("all_n_short", 2, TOO_SHORT),
        ]
        + [(rid or header, len(GENE), "scored") for header, rid in ODD_IDS],
    ),
    "fastq-zstd-bom-crlf-blank-lines": (
        "\ufeff\r\n" + fastq(TWO, "\r\n") + "\r\n\r\n",
        "zst",
        TWO_SCORED,
    ),
}


@pytest.mark.parametrize(("text", "fmt", "rows"), COMPLETES.values(), ids=COMPLETES)
def test_input_that_completes_lists_every_record(tmp_path, demo_models, text, fmt, rows):
    path = write(tmp_path / "input", text, fmt)  # no extension: the format is told by content
    out = run_sample(path, demo_models, tmp_path / "out")
    assert listed(out) == rows


def test_an_id_is_written_as_it_is_in_every_table(tmp_path, demo_models):
    text, _, _ = COMPLETES["odd-ids"]
    out = run_sample(write(tmp_path / "in.fa", text), demo_models, tmp_path / "out")
    quoted = "q\"uote's;semi,comma(paren)[bracket]{brace}=eq+plus"
    for name in ("records.tsv", "chunks.tsv", "prediction_results.txt"):
        assert f"\n{quoted}" in (out / name).read_text(), name  # a field of its own, unquoted


def test_colliding_ids_keep_each_chunk_with_its_record(tmp_path, demo_models):
    text, _, _ = COMPLETES["colliding-ids"]
    out = run_sample(write(tmp_path / "in.fa", text), demo_models, tmp_path / "out")
    chunks = {row.chunk_id: row.record_id for row in read_tsv(out / "chunks.tsv")}
    assert chunks == {
        "a_chunk_1": "a",
        "a_chunk_2": "a",
        "a_chunk_1_chunk_1": "a_chunk_1",
        "a_chunk_2_chunk_1": "a_chunk_2",
    }
    frames = [line.split("\t")[0] for line in (out / "prediction_results.txt").open()][1:]
    assert len(frames) == len(set(frames)) > 0


@pytest.mark.parametrize(
    "variant", ["gzip", "bzip2", "xz", "zstd", "crlf", "cr-only", "bom", "zstd-bom-crlf"]
)
def test_variants_read_as_the_plain_text(tmp_path, variant):
    text, fmt, _ = COMPLETES[variant]
    misnamed = tmp_path / ("input.bz2" if fmt == "gz" else "input.gz")  # content decides
    assert _pairs(write(misnamed, text, fmt)) == TWO


def test_soft_masked_records_score_as_upper_case(tmp_path, demo_models):
    text, _, _ = COMPLETES["soft-masked"]
    plain = run_sample(write(tmp_path / "plain.fa", fasta(TWO)), demo_models, tmp_path / "p")
    out = run_sample(write(tmp_path / "lower.fa", text), demo_models, tmp_path / "v")
    for name in ("records.tsv", "chunks.tsv", "prediction_results.txt"):
        assert (out / name).read_text() == (plain / name).read_text(), name


@pytest.mark.parametrize(("chunk_size", "mode"), [(300, "legacy"), (500, "overlap")])
def test_every_length_from_1_to_1001_is_listed(tmp_path, demo_models, chunk_size, mode):
    rng = random.Random(chunk_size)
    records = [(f"len{n}", "".join(rng.choices("ACGT", k=n))) for n in range(1, 1002)]
    out = run_sample(
        write(tmp_path / "in.fa", fasta(records)), demo_models, tmp_path / "out", chunk_size, mode
    )
    rows = list(read_tsv(out / "records.tsv"))
    assert [(row.record_id, int(row.length)) for row in rows] == [
        (rid, len(seq)) for rid, seq in records
    ]
    assert all((row.call == "unscored") == (row.reason != "") for row in rows)
    assert {row.reason for row in rows[:2]} == {TOO_SHORT}
    assert {row.reason for row in rows[2:] if row.call == "unscored"} <= {NO_CODON, ALL_STOPS}
    chunks = [(row.chunk_id, int(row.start), int(row.end)) for row in read_tsv(out / "chunks.tsv")]
    assert chunks == [
        (f"{rid}_chunk_{k}", start + 1, end)
        for rid, sequence in records
        for k, (start, end) in enumerate(chunk_spans(len(sequence), chunk_size, mode), start=1)
    ]


def prepare(path, tmp_path, chunk_size=500, shards=2, workers=1):
    """The preparing stage alone: chunk, translate, shard. Returns its outputs' paths."""
    outputs = prepared(tmp_path / "out")
    prepare_sample(path, chunk_size, "overlap", EMBEDDING_MODELS, shards, outputs, workers)
    return outputs


def test_a_5_mb_record_is_cut_whole(tmp_path):
    rng = random.Random(5)
    genome = "".join(rng.choices("ACGT", k=5_000_000))
    p = prepare(write(tmp_path / "big.fa.gz", fasta([("big", genome)]), "gz"), tmp_path)
    [record] = read_tsv(p.input_records)
    assert (record.record_id, record.length, record.chunks) == ("big", "5000000", "10000")
    chunks = list(read_tsv(p.chunk_frames))
    assert len(chunks) == 10000 and chunks[-1].end == "5000000"
    frames = sum(len(row.frames.split(",")) for row in chunks if row.frames)
    assert sum(int(row.frames) for row in read_tsv(p.manifest)) == frames
    # one record, one part however long; the shards cut inside it
    assert [int(part.records) for part in read_tsv(p.parts)] == [1]
    assert all(int(row.frames) > 0 for row in read_tsv(p.manifest))


@pytest.mark.slow
def test_100000_reads_are_all_listed(tmp_path):
    genomes = [sequence for path in DVF_VALIDATION for _, sequence in _pairs(path)]
    rng = random.Random(100)
    reads = []
    for n in range(100_000):
        genome = genomes[n % len(genomes)]
        start = rng.randrange(len(genome) - 150)
        reads.append((f"read{n}", genome[start : start + 150]))
    path = write(tmp_path / "reads.fa.zst", fasta(reads), "zst")
    p = prepare(path, tmp_path, chunk_size=300, workers=2)
    records = list(read_tsv(p.input_records))
    assert [row.record_id for row in records] == [rid for rid, _ in reads]
    assert {row.chunks for row in records} == {"1"}
    assert len(list(read_tsv(p.chunk_frames))) == 100_000
    assert len(list(read_tsv(p.parts))) > 1  # several blocks, each a worker's task


def _pairs(path):
    return [(r.id, r.sequence) for r in read_records(path)]


def truncated_gzip(text):
    data = gzip.compress(text.encode())
    return data[: len(data) // 2]


def corrupt_bzip2(text):
    data = bz2.compress(text.encode())
    return data[:100] + bytes(200) + data[300:]


def garbage():
    return bytes(random.Random(0).randrange(128, 256) for _ in range(4096))


# 12 reads of 150 bp, each a block of its own in many-blocks: the bad FASTQ cases spoil the
# 7th (its header on line 25) or the last (line 45)
READS = [(f"read{i}", REAL[i % 8][1][100 * i : 100 * i + 150]) for i in range(12)]
FASTQ_LINES = fastq(READS).splitlines(keepends=True)


def spoiled(line, text):
    """The FASTQ of READS with line `line` (1-based) replaced by `text`, lines and all."""
    return "".join(FASTQ_LINES[: line - 1]) + text + "".join(FASTQ_LINES[line:])


FOUR_LINES = "FASTQ records are four lines each"
MULTI_LINE = "(multi-line FASTQ) is not read: `seqkit seq in.fq > out.fq`"
SEQUENCE, QUALITY = FASTQ_LINES[25].rstrip(), FASTQ_LINES[27].rstrip()  # of the 7th read
WRAPPED = f"@read6\n{SEQUENCE[:75]}\n{SEQUENCE[75:]}\n+\n{QUALITY[:75]}\n{QUALITY[75:]}\n"

# Inputs that stop: (file bytes or text, what the message must hold besides the file's path).
STOPS = {
    "truncated-gzip": (truncated_gzip(fasta(REAL)), ["gzip data ends early", "gzip -t"]),
    "corrupt-bzip2": (
        corrupt_bzip2(fasta(REAL)),
        ["bzip2 data is damaged", "bzip2 -t", "Copy it again"],
    ),
    "fastq-truncated-gzip": (truncated_gzip(fastq(READS)), ["gzip data ends early", "gzip -t"]),
    "fastq-ends-in-a-quality-line": (
        fastq(READS)[:-100],
        ["the file ends inside record 12 ('@read11', line 45), in its quality line (line 48)"],
    ),
    "fastq-ends-after-a-sequence": (
        "".join(FASTQ_LINES[:-2]),
        ["the file ends inside record 12 ('@read11', line 45), after 2 of its four lines"],
    ),
    "fastq-quality-of-another-length": (
        spoiled(28, FASTQ_LINES[27][1:]),
        [
            "record 7 ('@read6', line 25) has a quality line (line 28) of 149 characters for a "
            "sequence of 150",
            "the file is damaged",
        ],
    ),
    "fastq-without-a-plus-line": (
        spoiled(31, ""),
        [
            "record 8 ('@read7', line 29) has '@+IF@+IF",
            "as its third line (line 31), where its '+' line should be",
            FOUR_LINES,
            "lost its '+' line",
        ],
    ),
    "fastq-without-a-plus-line-before-a-quality-starting-with-it": (
        spoiled(27, ""),
        [
            "record 7 ('@read6', line 25) has a '+' line (line 27) naming another record",
            "lost its '+' line",
        ],
    ),
    "fastq-multi-line": (
        "".join(FASTQ_LINES[:24]) + WRAPPED + "".join(FASTQ_LINES[28:]),
        ["record 7 ('@read6', line 25) has", "third line (line 27)", MULTI_LINE],
    ),
    "fastq-blank-line-between-reads": (
        spoiled(25, "\n" + FASTQ_LINES[24]),
        ["line 25 is blank, where record 7 should start with '@'", FOUR_LINES, "blank lines"],
    ),
    "fastq-plus-line-naming-another-read": (
        spoiled(27, "+read99\n"),
        ["record 7 ('@read6', line 25) has a '+' line (line 27) naming another record", "sed"],
    ),
    "fastq-then-fasta": (
        fastq(READS) + fasta(TWO),
        ["line 49 is a FASTA header", "where record 13 should start with '@'", "seqkit fq2fa"],
    ),
    "fasta-then-fastq": (
        fasta(TWO) + fastq(READS),
        [f"record '{TWO[1][0]}' (number 2)", "looks like FASTQ records", "seqkit fq2fa"],
    ),
    "fastq-rna": (
        spoiled(26, FASTQ_LINES[25].replace("T", "U")),
        ["record 'read6' (number 7, line 25) contains 'U'", "RNA", "sed '2~4y/Uu/Tt/'"],
    ),
    "fastq-duplicate-ids": (
        spoiled(41, "@read3 again\n"),
        ["1 record id(s) occur more than once: read3 (x2)", "seqkit rename"],
    ),
    "fastq-empty-header": (
        spoiled(25, "@\n"),
        ["record 7 (line 25) has an empty header ('@' followed by nothing)"],
    ),
    "protein": (">p1\nMKTAYIAKQRQISFVKSHFSRQ*\n", ["'p1'", "protein", "nucleotide sequences"]),
    "rna": (">r1\nACGUACGU\n", ["'r1'", "'U'", "RNA", "sed"]),
    "duplicate-ids": (
        ">a\nACGT\n>b\nACGT\n>a\nACGT\n>b x\nAC\n>c\nA\n",
        ["2 record id(s) occur more than once", "a (x2)", "b (x2)", "seqkit rename"],
    ),
    "binary-garbage": (garbage(), ["line 1", "not UTF-8 text", "binary file", "iconv"]),
    "star-in-dna": (
        ">s1\nACGTACGTAC*\n",
        ["'s1'", "'*'", "position 11", "no stop codon", "write N"],
    ),
    "gap-in-dna": (">g1\nACG--TAC\n", ["'g1'", "'-'", "position 4", "gaps", "seqkit seq -g"]),
    "digits-in-dna": (
        ">d1\n1 acgtacgtac gtacgtacgt\n61 acgt\n",
        ["'d1'", "'16'", "position 1", "GenBank", "SeqIO.convert"],
    ),
    "x-masked": (">x1\nACGTXXXXACGT\n", ["'x1'", "'X'", "position 5", "write N"]),
    "empty-header": (">\nACGT\n", ["record 1 has an empty header"]),
    # as Windows tools save text: with a byte-order mark, and without
    "utf16": (">r1\nACGT\n".encode("utf-16"), ["not UTF-8 text", "`iconv -f utf-16 -t utf-8`"]),
    "utf16-le": (
        ">r1\nACGT\n".encode("utf-16-le"),
        ["(number 1) contains '\\x00'", "UTF-16 text", "`iconv -f utf-16 -t utf-8`"],
    ),
    # past the first 8 kB that the reader decodes at a time
    "latin1-header": (
        fasta((f"r{i}", "ACGT") for i in range(3000)).encode() + b">caf\xe9\nACGT\n",
        ["line 6001 holds byte 0xe9", "iconv"],
    ),
}


NOT_PROTEIN = {"star-in-dna", "gap-in-dna", "digits-in-dna", "x-masked", "rna", "fasta-then-fastq"}


@pytest.mark.parametrize("case", STOPS)
@pytest.mark.parametrize("block_bytes", [None, 256], ids=["one-block", "many-blocks"])
def test_bad_input_stops_with_an_error_naming_file_record_and_fix(
    tmp_path, monkeypatch, case, block_bytes
):
    if block_bytes:  # the records spread over blocks, prepared by two worker processes
        monkeypatch.setattr(fasta_module, "BLOCK_BYTES", block_bytes)
    content, needles = STOPS[case]
    path = write(tmp_path / "bad.fa", content)
    with pytest.raises(InputError) as error:
        prepare(path, tmp_path, workers=2 if block_bytes else 1)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    for needle in needles:
        assert needle in message
    if case in NOT_PROTEIN:
        assert "protein" not in message  # a '*' in DNA was once called protein
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # nothing half-written


def test_a_missing_path_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(InputError) as error:
        list(read_records(tmp_path / "missing.fa"))
    assert str(error.value).startswith(f"{tmp_path / 'missing.fa'}: cannot be read (No such file")
    assert "Check the path" in str(error.value)


@pytest.mark.parametrize("fmt", ["gz", "bz2", "xz", "zst"])
def test_the_shard_estimate_reads_every_compression(tmp_path, fmt):
    """The estimate scales the text per compressed byte of the file's start to its size."""
    reads = [
        (f"{rid}_{start}", genome[start : start + 150])
        for path in DVF_VALIDATION
        for rid, genome in _pairs(path)
        for start in range(0, len(genome) - 150, 150)
    ]
    random.Random(1).shuffle(reads)
    text = fasta(reads)
    plain = estimated_seconds(write(tmp_path / "plain.fa", text), 300, "overlap", ["esm2"])
    packed = estimated_seconds(write(tmp_path / "packed", text, fmt), 300, "overlap", ["esm2"])
    assert plain > 0 and packed == pytest.approx(plain, rel=0.05)


# Sample sheets: (sheet text, what the message must hold besides the sheet's path).
SHEETS = {
    "missing-column": ("sample\tchunk_size\ns1\t500\n", ["line 1 (the header): no column 'fasta'"]),
    "unknown-column": (
        "sample\tfasta\tchunksize\ns1\t{fa}\t300\n",
        ["line 1 (the header), column 'chunksize': not a sample sheet column"],
    ),
    "comma-separated": ("sample,fasta\ns1,{fa}\n", ["separated by commas; use tabs"]),
    "bad-chunk-size": (
        "sample\tfasta\tchunk_size\ns1\t{fa}\t500\ns2\t{fa}\t20\ns3\t{fa}\t500bp\ns4\t{fa}\t-500\n",
        [
            "line 3 (sample 's2'), column chunk_size: 20 is less than the minimum of 30",
            "line 4 (sample 's3'), column chunk_size: '500bp' is not of type 'integer'",
            "line 5 (sample 's4'), column chunk_size: -500 is less than the minimum of 30",
            "chunk length in bp",
        ],
    ),
    "bad-chunking": (
        "sample\tfasta\tchunking\ns1\t{fa}\tequal\n",
        ["line 2 (sample 's1'), column chunking: 'equal' is not one of ['overlap', 'legacy']"],
    ),
    "duplicate-sample": (
        "sample\tfasta\ns1\t{fa}\ns2\t{fa}\ns1\t{fa}\n",
        ["line 4 (sample 's1'), column sample: 's1' is listed on line 2 too", "its own name"],
    ),
    "bad-sample-name": (
        "sample\tfasta\nmy sample\t{fa}\n",
        ["line 2 (sample 'my sample'), column sample: 'my sample' does not match", "letters"],
    ),
    "missing-fasta-value": (
        "sample\tfasta\ns1\t\n",
        ["line 2 (sample 's1'), column fasta: missing (nucleotide FASTA"],
    ),
    "missing-fasta-file": (
        "sample\tfasta\ns1\tno/such.fa\n",
        ["line 2 (sample 's1'), column fasta: no/such.fa does not exist", "relative path"],
    ),
    "extra-field": ("sample\tfasta\ns1\t{fa}\t500\n", ["line 2 (sample 's1'): 1 more field"]),
    "empty-sheet": ("", ["line 1: no header line"]),
}


@pytest.mark.parametrize(("text", "needles"), SHEETS.values(), ids=SHEETS)
def test_a_bad_sample_sheet_names_the_sheet_row_and_column(tmp_path, monkeypatch, text, needles):
    monkeypatch.chdir(tmp_path)
    fa = write(tmp_path / "good.fa", fasta(REAL[:1]))
    sheet = write(tmp_path / "samples.tsv", text.format(fa=fa))
    with pytest.raises(InputError) as error:
        read_sample_sheet(sheet, SHEET_SCHEMA)
    message = str(error.value)
    assert message.startswith(f"sample sheet {sheet}:")
    assert "its columns are sample, fasta, chunk_size, chunking, classifier" in message  # the fix
    for needle in needles:
        assert needle in message


def test_a_missing_sample_sheet_names_the_config_key(tmp_path):
    with pytest.raises(InputError) as error:
        read_sample_sheet(tmp_path / "samples.tsv", SHEET_SCHEMA)
    assert str(error.value).startswith(f"sample sheet {tmp_path / 'samples.tsv'}:\n  cannot be")
    assert "set `samples:` in the config to its path" in str(error.value)


def test_a_sheet_saved_by_excel_reads_with_defaults(tmp_path):
    fa = write(tmp_path / "good.fa", fasta(REAL[:1]))
    sheet = write(tmp_path / "samples.tsv", f"\ufeffsample\tfasta\r\ns1\t{fa}\r\n\r\n")
    assert read_sample_sheet(sheet, SHEET_SCHEMA) == {
        "s1": {"sample": "s1", "fasta": str(fa), "chunk_size": 500, "chunking": "overlap"}
    }


def test_a_bad_training_sheet_names_the_set_column_and_missing_genbank(tmp_path):
    fa = write(tmp_path / "good.fa", fasta(REAL[:1]))
    text = (
        "set\tfasta\tlabel\trole\tgenbank\n"
        f"v\t{fa}\tvirus\ttrain\t{tmp_path / 'no.gb'}\n"
        f"v\t{fa}\tphage\ttrain\t\n"
    )
    sheet = write(tmp_path / "training.tsv", text)
    with pytest.raises(InputError) as error:
        read_sample_sheet(
            sheet, TRAINING_SCHEMA, key="set", files=("fasta", "genbank"), sheet="training sheet"
        )
    message = str(error.value)
    assert message.startswith(f"training sheet {sheet}:")
    assert "line 2 (set 'v'), column genbank: " in message and "does not exist" in message
    assert "line 3 (set 'v'), column label: 'phage' is not one of" in message
    assert "line 3 (set 'v'), column set: 'v' is listed on line 2 too" in message


CONFIGS = {
    "unknown-key": (
        {"embedding": {"gpus_per_job": 2}},
        "embedding.gpus_per_job: is not a known key; the keys here are: shards, device",
    ),
    "shards-zero": ({"embedding": {"shards": 0}}, "embedding.shards: 0 is less than the minimum"),
    "shards-word": ({"embedding": {"shards": "many"}}, "embedding.shards: 'many' is not one of"),
    "bad-device": (
        {"embedding": {"device": "tpu"}},
        "embedding.device: 'tpu' is not one of ['auto', 'cpu', 'cuda'] (auto takes the job's GPU",
    ),
    "bad-gpu-id": ({"embedding": {"gpus": [0, 1.5]}}, "embedding.gpus.1: 1.5 is not of type"),
    "not-boolean": (
        {"output": {"keep_intermediate": "yes"}},
        "output.keep_intermediate: 'yes' is not of type 'boolean' (also write the original's",
    ),
    "samples-not-a-path": ({"samples": 3}, "samples: 3 is not of type 'string' (path of"),
}


@pytest.mark.parametrize(("config", "needle"), CONFIGS.values(), ids=CONFIGS)
def test_a_bad_config_value_names_the_key_what_is_allowed_and_what_it_means(config, needle):
    config = {"samples": "config/samples.tsv", **config}
    assert [needle in problem for problem in problems(config, load_schema(CONFIG_SCHEMA))] == [True]


@pytest.mark.parametrize(
    ("path", "old", "new", "needles"),
    [
        (
            "config/demo/config.yaml",
            "  device: cpu",
            "  device: tpu",
            ["config (from", "config/demo/config.yaml", "embedding.device: 'tpu' is not one of"],
        ),
        (
            "config/demo/samples.tsv",
            "\t500\t",
            "\t400\t",
            [
                "sample demo_500: no published classifier is for 400 bp chunks",
                "give the sample a `classifier` column in the sample sheet",
            ],
        ),
        (
            "config/demo/config.yaml",
            "  classifier_500: resources/demo/500_model.pth",
            "  classifier_500: results/training/classifier.safetensors\n"
            "training:\n  sheet: config/demo/training.tsv",
            [
                "sample demo_500 is cut into 500 bp chunks, but its classifier "
                "results/training/classifier.safetensors is for 300 bp chunks",
                "set the sample's chunk_size to 300",
            ],
        ),
        (
            "config/demo/samples.tsv",
            "demo_500\tconfig/demo/data/demo.fa\t500\toverlap\ndemo_300_legacy\tconfig/demo/data/demo.fa\t300"
            "\tlegacy\n",
            "",
            ["config/demo/samples.tsv: it holds its header and no sample", "add a line"],
        ),
    ],
    ids=["config", "sample-sheet", "classifier-chunk-size", "header-only-sheet"],
)
def test_snakemake_stops_before_running_with_the_error_as_written(workdir, path, old, new, needles):
    text = (workdir / path).read_text()
    assert old in text
    (workdir / path).write_text(text.replace(old, new, 1))
    result = snakemake(workdir, *DEMO, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for needle in needles:
        assert needle in output
    assert "InputError" not in output and 'File "' not in output, output  # the message alone


@pytest.mark.slow
def test_good_samples_complete_beside_bad_ones(workdir):
    """One run of the workflow with keep-going (profiles/local): the good samples, which hold
    every kind of odd but good record, complete with each record listed, and reads given as
    gzip-compressed FASTQ get the calls and viral FASTA they get as FASTA; the bad ones stop
    with their errors and leave no results; the table of all samples lists the good ones' counts
    and the bad ones' errors."""
    cases = ("header-only", "iupac-codes", "all-n", "odd-ids", "colliding-ids")
    good = {
        "odd_bzip2": ("".join(COMPLETES[case][0] for case in cases), "bz2", 500, "overlap"),
        "bom_crlf_zstd": (COMPLETES["zstd-bom-crlf"][0], "zst", 300, "legacy"),
        "empty": ("", None, 500, "overlap"),
        "fastq_gzip": (fastq(TWO), "gz", 300, "legacy"),  # bom_crlf_zstd's records
    }
    expected = {
        "odd_bzip2": [row for case in cases for row in COMPLETES[case][2]],
        "bom_crlf_zstd": COMPLETES["zstd-bom-crlf"][2],
        "empty": [],
        "fastq_gzip": COMPLETES["zstd-bom-crlf"][2],
    }
    bad = {
        "protein": STOPS["protein"][0],
        "truncated": STOPS["truncated-gzip"][0],
        "truncated_fastq": STOPS["fastq-ends-in-a-quality-line"][0],
    }
    lines = ["sample\tfasta\tchunk_size\tchunking"]
    for sample, (text, fmt, chunk_size, mode) in good.items():
        write(workdir / sample, text, fmt)
        lines.append(f"{sample}\t{sample}\t{chunk_size}\t{mode}")
    for sample, content in bad.items():
        write(workdir / sample, content)
        lines.append(f"{sample}\t{sample}\t500\toverlap")
    (workdir / "config" / "demo" / "samples.tsv").write_text("\n".join(lines) + "\n")
    set_config(workdir, shards="auto")  # the estimate reads each compression too
    result = snakemake(workdir, "--profile", "profiles/local", *DEMO, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for sample, rows in expected.items():
        assert listed(workdir / "results" / sample) == rows, sample
    fasta_run, fastq_run = (workdir / "results" / s for s in ("bom_crlf_zstd", "fastq_gzip"))
    for name in ("records.tsv", "chunks.tsv", "regions.tsv", "virus.fna", "virus_regions.fna"):
        assert (fastq_run / name).read_bytes() == (fasta_run / name).read_bytes(), name
    for sample in bad:
        assert not (workdir / "results" / sample / "records.tsv").exists()
    assert "protein: record 'p1' (number 1) contains" in output
    assert "truncated: its gzip data ends early" in output
    assert "truncated_fastq: the file ends inside record 12 ('@read11', line 45)" in output
    table = {row.sample: row for row in read_tsv(workdir / "results" / "samples.tsv")}
    assert list(table) == list(good) + list(bad)
    for sample, rows in expected.items():
        assert (table[sample].status, table[sample].records) == ("finished", str(len(rows)))
    for sample, error in (
        ("protein", "prepare_sample: InputError: protein: record 'p1' (number 1) contains"),
        ("truncated", "prepare_sample: InputError: truncated: its gzip data ends early"),
    ):
        assert (table[sample].status, table[sample].records) == ("failed", "NA")
        assert table[sample].failure.startswith(error), table[sample].failure
    assert "failed" in (workdir / "results" / "samples.html").read_text()
