"""The aggregation stage on hand-written inputs: the original's two files byte for byte, and a
row for every record and every chunk."""

import numpy as np

from virnucpro.calling import CallRule
from virnucpro.h5store import embedding_writer
from virnucpro.predict import SCORE_COLUMNS
from virnucpro.regions import RegionSettings
from virnucpro.report import aggregate_sample

from stages import sample_outputs, table


def embedding_file(path, frames):
    """An embedding file of `frames` rows, as the classifier would have read it."""
    with embedding_writer(path, range(frames), ["f"] * frames, 4) as out:
        out.write(0, np.zeros((frames, 4), dtype=np.float32))
        out.attrs.update(
            model="m", model_path="m.pt", random_weights=False, precision="fp32", device="cpu"
        )
    return path


def test_aggregation_writes_the_original_formats_and_every_record(tmp_path):
    records = table(
        tmp_path / "records.tsv",
        ("record_id", "length", "chunks", "reason"),
        [
            ("A", 5000, 11, ""),
            ("B", 2, 1, ""),
            ("C", 0, 0, "empty sequence"),
            ("D", 400, 1, ""),
        ],
    )
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
    chunks = table(
        tmp_path / "chunks_in.tsv",
        ("chunk_id", "record_id", "start", "end", "length", "frames", "reason"),
        chunk_rows,
    )
    frames = [f"A_chunk_{k}{f}" for k in range(1, 12) if k != 3 for f in ("F1", "R2")] + [
        "D_chunk_1F3"
    ]
    score = {
        name: ("0.4", "0.6") if name.startswith("A_chunk_1") else ("0.7", "0.3") for name in frames
    }
    score["A_chunk_2F1"] = score["A_chunk_2R2"] = ("0.5", "0.5")  # ties: frames others, chunk virus
    score["D_chunk_1F3"] = ("5.9604645e-08", "0.99999994")
    rows = [
        (i, f, "virus" if float(score[f][1]) > float(score[f][0]) else "others", *score[f])
        for i, f in enumerate(frames)
    ]
    shards = [
        (
            table(tmp_path / f"s{j}.tsv", SCORE_COLUMNS, rows[j::2]),
            [embedding_file(tmp_path / f"s{j}.h5", len(rows[j::2]))],
        )
        for j in range(2)
    ]
    outputs = sample_outputs(tmp_path)
    out = {path.name: path for path in vars(outputs).values()}
    settings = {"classifier": "models/500_model.pth", "chunk_size": 500, "chunking": "overlap"}
    aggregate_sample("s", records, chunks, shards, outputs, settings, CallRule(), RegionSettings())

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
            "best_virus_score",
            "mean_chunk_virus_score",
            "regions",
            "call",
            "reason",
        ],
        # 4 of 10 chunks are virus, but the record's best others score (0.7) beats its best
        # virus score (0.6): the original's chunk rule applied to all of a record's frames.
        # Its chunks all claim bases 1-500 here, so their viral bases are 500; the mean of the
        # chunks' best virus scores is (3 x 0.6 + 0.5 + 6 x 0.3) / 10
        ["A", "5000", "11", "10", "4", "0.400000", "500", "0.6", "0.410000", "0", "others", ""],
        ["B", "2", "1", "0", "0", "NA", "0", "NA", "NA", "0", "unscored", "shorter than one codon"],
        ["C", "0", "0", "0", "0", "NA", "0", "NA", "NA", "0", "unscored", "empty sequence"],
        [
            "D",
            "400",
            "1",
            "1",
            "1",
            "1.000000",
            "400",
            "0.99999994",
            "1.000000",
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
    assert "classifier: models/500_model.pth" in summary
    assert (
        "calls: virus when best virus score >= best others score (the original's rule)\n" in summary
    )
