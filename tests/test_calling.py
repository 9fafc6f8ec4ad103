"""The call rule's thresholds and the score it compares, and the viral FASTA files written from
the calls and regions."""

import pytest

from virnucpro.calls.calling import CallRule, covered_bases
from virnucpro.calls.virus_fasta import write_virus_fasta
from virnucpro.io.fasta import read_records

from stages import part_rows_by_hand, table


def test_the_default_rule_is_the_originals_whatever_the_score():
    rule = CallRule()
    assert rule.chunk_is_virus(0.5, 0.5) and not rule.chunk_is_virus(0.7, 0.6)
    assert rule.chunk_is_virus(0.2, 0.3)  # two frames: neither above 0.5, virus still wins
    assert rule.record_call(0.2, 0.3, 0.01, 1, 100) == "virus"  # no fraction or length asked


def test_the_score_compared_is_the_difference_under_the_originals_rule():
    rule = CallRule()
    assert rule.score(0.7, 0.6) == 0.6 - 0.7 < rule.boundary == 0
    assert rule.score(0.5, 0.5) == rule.boundary  # the tie, virus
    assert CallRule(min_virus_score=0.9).score(0.95, 0.9) == 0.9
    assert rule.describe() == (
        "virus when best_virus_score >= best_others_score (the original's rule); others otherwise"
    )


def test_a_minimum_score_and_the_multi_chunk_thresholds():
    rule = CallRule(min_virus_score=0.9, min_virus_fraction=0.5, min_virus_bases=1000)
    assert rule.chunk_is_virus(0.95, 0.9) and not rule.chunk_is_virus(0.05, 0.89)
    assert rule.record_call(0.1, 0.95, 0.5, 1000, 4) == "virus"
    assert rule.record_call(0.1, 0.95, 0.25, 1000, 4) == "others"  # too few viral chunks
    assert rule.record_call(0.1, 0.95, 0.5, 999, 4) == "others"  # too few viral bases
    assert rule.record_call(0.1, 0.95, 1.0, 150, 1) == "virus"  # a read: its score alone
    assert rule.region_threshold == 0.9 and CallRule().region_threshold == 0.5


def test_overlapping_viral_chunks_count_their_shared_bases_once():
    assert covered_bases([(1, 500), (451, 950), (2001, 2500)]) == 950 + 500
    assert covered_bases([(1, 500), (101, 400)]) == 500
    assert covered_bases([]) == 0


RECORDS = ("record_id", "length", "best_virus_score", "regions", "call")
REGIONS = ("region_id", "record_id", "start", "end", "mean_virus_score", "best_virus_score")


def write_calls(tmp_path, records, regions):
    """The inputs of write_virus_fasta, all but its output: the tables hand-written, in one
    part."""
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a first\nACGTACGTAC\n>b\nGGGGCCCCAA\n>c\nTTTT\n")
    records = table(tmp_path / "records.tsv", RECORDS, records)
    regions = table(tmp_path / "regions.tsv", REGIONS, regions)
    parts, part_rows = part_rows_by_hand(fasta, records, regions, tmp_path)
    return fasta, parts, records, regions, part_rows


def test_viral_records_and_regions_go_to_two_fasta_files_a_record_each(tmp_path):
    inputs = write_calls(
        tmp_path,
        [("a", 10, "0.9", 1, "virus"), ("b", 10, "0.8", 2, "others"), ("c", 4, "0.1", 0, "others")],
        [
            ("a|region_1_10", "a", 1, 10, "0.9", "0.9"),  # all of a record called virus
            ("b|region_1_4", "b", 1, 4, "0.7", "0.8"),
            ("b|region_7_10", "b", 7, 10, "0.6", "0.6"),
        ],
    )
    records, regions = tmp_path / "virus.fna", tmp_path / "virus_regions.fna"
    write_virus_fasta(*inputs, records, regions)
    assert records.read_text().splitlines()[0] == ">a length=10 best_virus_score=0.9"
    assert {r.id: r.sequence for r in read_records(records)} == {"a": "ACGTACGTAC"}
    text = regions.read_text()
    assert "b|region_1_4 record_length=10 mean_virus_score=0.7 best_virus_score=0.8" in text
    # a header per row of regions.tsv, whole records among them: `grep -c '>'` counts them
    assert text.count(">") == 3
    assert {r.id: r.sequence for r in read_records(regions)} == {
        "a|region_1_10": "ACGTACGTAC",
        "b|region_1_4": "GGGG",
        "b|region_7_10": "CCAA",
    }


def test_records_that_do_not_match_the_fasta_are_an_error(tmp_path):
    inputs = write_calls(tmp_path, [("a", 10, "0.9", 0, "virus"), ("c", 4, "0.1", 0, "others")], [])
    records, regions = tmp_path / "virus.fna", tmp_path / "virus_regions.fna"
    with pytest.raises(ValueError, match="does not list the records of"):
        write_virus_fasta(*inputs, records, regions)
    assert not records.exists() and not regions.exists()
