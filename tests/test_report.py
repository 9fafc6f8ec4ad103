"""The aggregation stage on hand-written inputs: the original's two files byte for byte, a row
for every record and every chunk, and each record's calibrated virus probability and estimated
false discovery rate where the classifier holds a calibration."""

import csv
import io

import numpy as np
import pytest

from virnucpro.calls.calibration import Calibration
from virnucpro.calls.calling import CallRule
from virnucpro.calls.regions import RegionSettings
from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.io.classifier_header import CALIBRATION_KEY
from virnucpro.io.tables import read_tsv
from virnucpro.models.classifier import MLPClassifier, save_classifier
from virnucpro.stages.aggregate import aggregate_sample

from stages import prepared_by_hand, sample_outputs


def test_aggregation_writes_the_original_formats_and_every_record(tmp_path):
    records = [
        ("A", 5000, 11, ""),
        ("B", 2, 1, ""),
        ("C", 0, 0, "empty sequence"),
        ("D", 400, 1, ""),
    ]
    chunk_rows = [
        (
            f"A_chunk_{k}",
            "A",
            1,
            500,
            500,
            "F1,R2" if k != 3 else "",
            "" if k != 3 else "no stop-free frame",
        )
        for k in range(1, 12)
    ]
    chunk_rows += [
        ("B_chunk_1", "B", 1, 2, 2, "", "shorter than one codon"),
        ("D_chunk_1", "D", 1, 400, 400, "F3", ""),
    ]
    frames = [f"A_chunk_{k}{f}" for k in range(1, 12) if k != 3 for f in ("F1", "R2")] + [
        "D_chunk_1F3"
    ]
    score = {
        name: ("0.4", "0.6") if name.startswith("A_chunk_1") else ("0.7", "0.3") for name in frames
    }
    score["A_chunk_2F1"] = score["A_chunk_2R2"] = ("0.5", "0.5")  # ties: frames others, chunk virus
    score["D_chunk_1F3"] = ("5.9604645e-08", "0.99999994")
    classifier = write_pickled_classifier(tmp_path / "500_model.pth", 4)
    # two shards of consecutive frames: A's frames lie in both
    prepared, embeddings = prepared_by_hand(
        tmp_path, records, chunk_rows, [score[f] for f in frames], classifier, shards=2
    )
    outputs = sample_outputs(tmp_path)
    out = {path.name: path for path in vars(outputs).values()}
    settings = {"classifier": classifier, "chunk_size": 500, "chunking": "overlap"}
    rule, regions = CallRule(), RegionSettings()
    aggregate_sample("s", prepared, embeddings, outputs, settings, rule, regions)

    predictions = out["prediction_results.txt"].read_text().splitlines()
    assert predictions[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    assert predictions[1:4] == [
        "A_chunk_1F1\tvirus\t0.4\t0.6",
        "A_chunk_1R2\tvirus\t0.4\t0.6",
        "A_chunk_2F1\tothers\t0.5\t0.5",
    ]
    assert predictions[-1] == "D_chunk_1F3\tvirus\t5.9604645e-08\t0.99999994"
    assert len(predictions) == 1 + len(frames)

    highest = out["prediction_results_highestscore.csv"].read_text().splitlines()
    assert highest[0] == "Modified_ID\tIs_Virus"
    ids = [line.split("\t")[0] for line in highest[1:]]
    assert ids == sorted(ids) and ids[:3] == ["A_chunk_1", "A_chunk_10", "A_chunk_11"]
    calls = dict(line.split("\t") for line in highest[1:])
    assert calls["A_chunk_1"] == "True" and calls["A_chunk_2"] == "True"  # the tie counts as virus
    assert calls["A_chunk_4"] == "False" and "A_chunk_3" not in calls and "B_chunk_1" not in calls

    got = [line.split("\t") for line in out["records.tsv"].read_text().splitlines()]
    assert got == [
        [
            "record_id",
            "length",
            "chunks",
            "chunks_scored",
            "chunks_virus",
            "fraction_virus",
            "virus_bases",
            "best_others_score",
            "best_virus_score",
            "mean_chunk_virus_score",
            "virus_probability",
            "estimated_fdr",
            "regions",
            "call",
            "reason",
        ],
        # 4 of 10 chunks are virus, but the record's best others score (0.7) beats its best
        # virus score (0.6): the original's chunk rule applied to all of a record's frames,
        # which the two columns show.
        # Its chunks all claim bases 1-500 here, so their viral bases are 500; the mean of the
        # chunks' best virus scores is (3 x 0.6 + 0.5 + 6 x 0.3) / 10
        # The .pth classifier has no calibration: no virus probability, no estimated FDR
        ["A", "5000", "11", "10", "4", "0.400000", "500", "0.7", "0.6", "0.410000"]
        + ["NA", "NA", "0", "others", ""],
        ["B", "2", "1", "0", "0", "NA", "0", "NA", "NA", "NA", "NA", "NA", "0", "unscored"]
        + ["shorter than one codon"],
        ["C", "0", "0", "0", "0", "NA", "0", "NA", "NA", "NA", "NA", "NA", "0", "unscored"]
        + ["empty sequence"],
        [
            "D",
            "400",
            "1",
            "1",
            "1",
            "1.000000",
            "400",
            "5.9604645e-08",
            "0.99999994",
            "1.000000",
            "NA",
            "NA",
            "0",
            "virus",
            "",
        ],
    ]
    chunk_out = [line.split("\t") for line in out["chunks.tsv"].read_text().splitlines()]
    assert len(chunk_out) == 1 + 13
    assert chunk_out[3][-4:] == ["NA", "NA", "NA", "no stop-free frame"]
    summary = out["summary.txt"].read_text()
    assert "chunks of 500 bp, chunking overlap" in summary
    assert f"classifier: {classifier}" in summary
    assert (
        "calls: virus when best_virus_score >= best_others_score (the original's rule); "
        "others otherwise\n" in summary
    )
    assert "estimated_fdr: NA, as the classifier has no calibration" in summary


# Clipped below 0.2 and above 0.8, so that records of different scores tie in probability
CALIBRATION = Calibration([0.2, 0.5, 0.8], [0.05, 0.3, 0.9])


def classifier(path, calibration=None):
    """A real classifier file, untrained, holding `calibration` where given."""
    metadata = {} if calibration is None else {CALIBRATION_KEY: calibration.to_json()}
    save_classifier(MLPClassifier(4).eval(), path, metadata=metadata)
    return path


def aggregate(directory, classifier_path, records):
    """Aggregate `records`, {record_id: [each chunk's virus score, None for a chunk without a
    frame]}, chunks of 300 bp with one frame; the paths of the outputs by name."""
    directory.mkdir()
    record_rows, chunk_rows, scores = [], [], []
    for record_id, chunk_scores in records.items():
        reason = "" if chunk_scores else "empty sequence"
        record_rows.append((record_id, 300 * len(chunk_scores), len(chunk_scores), reason))
        for k, virus in enumerate(chunk_scores, 1):
            chunk_id = f"{record_id}_chunk_{k}"
            frames, reason = ("F1", "") if virus is not None else ("", "no stop-free frame")
            chunk_rows.append((chunk_id, record_id, 300 * k - 299, 300 * k, 300, frames, reason))
            if virus is not None:
                scores.append((np.float32(1 - virus), np.float32(virus)))
    prepared, embeddings = prepared_by_hand(
        directory, record_rows, chunk_rows, scores, classifier_path, part_records=5
    )
    outputs = sample_outputs(directory)
    aggregate_sample(
        "s",
        prepared,
        embeddings,
        outputs,
        {"classifier": classifier_path, "chunk_size": 300, "chunking": "overlap"},
        CallRule(),
        RegionSettings(),
    )
    return {path.name: path for path in vars(outputs).values()}


@pytest.fixture
def records():
    """Reads of random scores, ties of score and of calibrated probability, records of several
    chunks, and records without a score."""
    rng = np.random.default_rng(3)
    reads = {f"read_{i}": [score] for i, score in enumerate(rng.uniform(size=40))}
    return reads | {
        "tie_a": [0.65],
        "tie_b": [0.65],
        "low_a": [0.1],  # both clipped to 0.05
        "low_b": [0.15],
        "long": [0.3, None, 0.7, 0.55],  # its best, 0.7, is what is calibrated
        "frameless": [None, None],
        "empty": [],
    }


def test_a_calibrated_classifier_gives_probabilities_and_estimated_fdrs(records, tmp_path):
    out = aggregate(tmp_path / "run", classifier(tmp_path / "c.safetensors", CALIBRATION), records)
    rows = list(read_tsv(out["records.tsv"]))
    assert [row.record_id for row in rows] == list(records)
    scored = [row for row in rows if row.call != "unscored"]
    assert {row.record_id for row in rows} - {row.record_id for row in scored} == {
        "frameless",
        "empty",
    }
    for row in rows:
        if row.call == "unscored":
            assert (row.virus_probability, row.estimated_fdr) == ("NA", "NA")
    by_id = {row.record_id: row for row in rows}
    assert by_id["long"].best_virus_score == str(np.float32(0.7))
    probabilities = [float(row.virus_probability) for row in scored]
    expected = CALIBRATION.apply([float(row.best_virus_score) for row in scored])
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-12)
    # brute force: the mean of 1 - q over every scored record of q >= p
    brute = [np.mean([1 - q for q in probabilities if q >= p]) for p in probabilities]
    fdrs = [float(row.estimated_fdr) for row in scored]
    np.testing.assert_allclose(fdrs, brute, rtol=0, atol=1e-12)
    assert by_id["low_a"].estimated_fdr == by_id["low_b"].estimated_fdr  # ties: all are called
    called = [p for p, row in zip(probabilities, scored, strict=True) if row.call == "virus"]
    assert 0 < len(called) < len(scored)
    summary = out["summary.txt"].read_text()
    assert (
        f"estimated false discovery rate of the {len(called)} virus calls: "
        f"{np.mean([1 - p for p in called]):.4f} (the mean of 1 - virus_probability over them)"
    ) in summary


@pytest.mark.parametrize("uncalibrated", ["500_model.pth", "untrained.safetensors"])
def test_without_a_calibration_the_columns_are_na_and_the_rest_unchanged(
    records, uncalibrated, tmp_path
):
    calibrated = aggregate(
        tmp_path / "calibrated", classifier(tmp_path / "c.safetensors", CALIBRATION), records
    )
    path = tmp_path / uncalibrated
    if path.suffix == ".safetensors":
        classifier(path)
    else:
        write_pickled_classifier(path, 4)  # the original's format, which holds no calibration
    plain = aggregate(tmp_path / "plain", path, records)
    the_rest = ("prediction_results.txt", "prediction_results_highestscore.csv", "chunks.tsv")
    for name in (*the_rest, "regions.tsv"):
        assert plain[name].read_bytes() == calibrated[name].read_bytes()
    for row, calibrated_row in zip(
        read_tsv(plain["records.tsv"]), read_tsv(calibrated["records.tsv"]), strict=True
    ):
        assert (row.virus_probability, row.estimated_fdr) == ("NA", "NA")
        assert row._replace(virus_probability="", estimated_fdr="") == calibrated_row._replace(
            virus_probability="", estimated_fdr=""
        )
    assert "the classifier has no calibration" in plain["summary.txt"].read_text()


# ids that sort differently as text than as numbers, by code point beyond ASCII, with a '"'
# (which a table quotes) and a control character (which sorts before a tab)
ODD_IDS = ["b", "a_1", "a", "a10", "a2", "é", "Z", "a-b", "ß", "日本", 'q"uote', "a\x01", "9"]


def varied_sample(seed=5):
    """Records, chunks and frame scores of every kind: reads of one to three frames or none,
    records without chunks, and long records with a run of high scores (a region); the reads
    of ODD_IDS all scored."""
    rng = np.random.default_rng(seed)
    records, chunks, scores = [], [], []
    kinds = [("odd", record_id) for record_id in ODD_IDS]
    kinds += [(("read", "empty", "long", "read")[k % 4], f"read{k}") for k in range(40)]
    for kind, record_id in kinds:
        n_chunks = {"odd": 1, "read": 1, "empty": 0, "long": int(rng.integers(5, 13))}[kind]
        records.append((record_id, 300 * n_chunks, n_chunks, "" if n_chunks else "empty sequence"))
        for k in range(1, n_chunks + 1):
            frames = ["F1", "F2", "R1"][: int(rng.integers(kind == "odd", 4))]
            reason = "" if frames else "no stop-free frame"
            chunks.append(
                (f"{record_id}_chunk_{k}", record_id, 300 * k - 299, 300 * k, 300, ",".join(frames))
                + (reason,)
            )
            viral = kind == "long" and 2 <= k <= 5
            for _ in frames:
                virus = rng.uniform(0.8, 1) if viral else rng.uniform(0, 1)
                virus = 0.5 if rng.random() < 0.05 else virus  # ties of the two classes
                scores.append((np.float32(1 - virus), np.float32(virus)))
    return records, chunks, scores


OUTPUTS = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "records.tsv",
    "chunks.tsv",
    "regions.tsv",
    "summary.txt",
)


def aggregate_varied(directory, classifier_path, part_records, shards, workers):
    """The OUTPUTS of varied_sample aggregated in parts of `part_records` records, `shards`
    shards, by `workers` processes: {name: bytes}; and whether some part straddles shards."""
    directory.mkdir()
    records, chunks, scores = varied_sample()
    prepared, embeddings = prepared_by_hand(
        directory, records, chunks, scores, classifier_path, part_records, shards
    )
    outputs = sample_outputs(directory / "out")
    settings = {"classifier": classifier_path, "chunk_size": 300, "chunking": "overlap"}
    aggregate_sample(
        "s", prepared, embeddings, outputs, settings, CallRule(), RegionSettings(), workers
    )
    shard_starts = {int(row.first_ordinal) for row in read_tsv(prepared.manifest)}
    straddles = any(
        any(int(p.first_ordinal) < s < int(p.first_ordinal) + int(p.frames) for s in shard_starts)
        for p in read_tsv(prepared.parts)
    )
    return {name: (directory / "out" / name).read_bytes() for name in OUTPUTS}, straddles


@pytest.mark.parametrize("calibrated", [False, True], ids=["original-format", "calibrated"])
def test_the_outputs_do_not_depend_on_parts_shards_or_workers(calibrated, tmp_path):
    path = tmp_path / ("c.safetensors" if calibrated else "500_model.pth")
    if calibrated:
        classifier(path, CALIBRATION)
    else:
        write_pickled_classifier(path, 4)
    whole, _ = aggregate_varied(tmp_path / "whole", path, 1000, 1, 1)
    assert b"|region_" in whole["regions.tsv"] and b"\tunscored\t" in whole["records.tsv"]
    for part_records, shards, workers in ((3, 4, 2), (1, 7, 1), (10, 2, 2)):
        parted, straddles = aggregate_varied(
            tmp_path / f"{part_records}-{shards}-{workers}", path, part_records, shards, workers
        )
        assert straddles
        for name in OUTPUTS:
            assert parted[name] == whole[name], (name, part_records, shards, workers)


def test_the_highest_score_table_is_sorted_by_chunk_id_as_python_sorts_text(tmp_path):
    records, chunks, scores = varied_sample()
    classifier_path = write_pickled_classifier(tmp_path / "500_model.pth", 4)
    outputs, _ = aggregate_varied(tmp_path / "run", classifier_path, 2, 3, 2)
    frames = iter(scores)
    expected = []
    for chunk in chunks:
        named = [next(frames) for _ in chunk[5].split(",")] if chunk[5] else []
        if named:
            others, virus = (max(float(str(f[i])) for f in named) for i in (0, 1))
            expected.append((chunk[0], virus >= others))  # the original's rule
    text = io.StringIO()  # quoted as the original's pandas table quotes: csv's default
    table = csv.writer(text, delimiter="\t", lineterminator="\n")
    table.writerows([("Modified_ID", "Is_Virus"), *sorted(expected)])
    assert outputs["prediction_results_highestscore.csv"] == text.getvalue().encode()
    ids = [chunk_id for chunk_id, _ in sorted(expected)]
    assert ids.index("9_chunk_1") < ids.index("Z_chunk_1") < ids.index("a_1_chunk_1")
    assert ids.index("a\x01_chunk_1") < ids.index("a_1_chunk_1") < ids.index("ß_chunk_1")
    assert ids.index("ß_chunk_1") < ids.index("é_chunk_1") < ids.index("日本_chunk_1")
    assert b'\n"q""uote_chunk_1"\t' in outputs["prediction_results_highestscore.csv"]
