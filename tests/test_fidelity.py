"""The FP8 gate on the CPU: its figures against a brute-force reference, a forced disagreement
of vectors or of calls failing with its message, agreement passing; and an embedding job with
precision fp8 (torch computes FP8 products on the CPU too) recording its gate, or stopping."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from virnucpro.calls.calling import CallRule
from virnucpro.calls.fidelity import FidelityError, GateReport, GateSettings, check, measure
from virnucpro.calls.regions import RegionSettings
from virnucpro.io.h5store import read_attrs, read_embeddings
from virnucpro.models.classifier import MLPClassifier, scores
from virnucpro.stages.aggregate import aggregate_sample
from virnucpro.stages.embed import embed_shard

from stages import prepared, sample_outputs

SETTINGS = GateSettings()


def vectors(n=400, width=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)


def test_the_cosines_are_those_of_each_row():
    fp16 = vectors()
    fp8 = fp16 + 0.01 * vectors(seed=1)
    report = measure(fp16, fp8)
    rows = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(fp16, fp8, strict=True)]
    assert report.frames == 400 and report.call_changes is None
    assert report.cosine_min == pytest.approx(min(rows), abs=1e-6)
    assert report.cosine_p1 == pytest.approx(np.percentile(rows, 1), abs=1e-6)
    assert report.cosine_mean == pytest.approx(np.mean(rows), abs=1e-6)
    check(report, SETTINGS, "shard_0000")  # 1% noise: cosine about 0.99995, within the bar


def test_vectors_that_disagree_fail_the_job_with_what_was_measured_and_the_way_back():
    fp16 = vectors()
    report = measure(fp16, fp16 + 0.2 * vectors(seed=1))  # cosine about 0.98
    with pytest.raises(FidelityError) as error:
        check(report, SETTINGS, "results/s/embeddings/shard_0003.esm2.h5")
    message = str(error.value)
    assert message.startswith("results/s/embeddings/shard_0003.esm2.h5: FP8 against fp16 on 400")
    assert f"1st percentile {report.cosine_p1:.6f}" in message
    assert "is under embedding.fp8_gate.min_cosine_p1 0.999" in message
    assert "Set embedding.precision to fp16" in message


def test_calls_that_change_fail_the_job_though_the_vectors_are_close():
    torch.manual_seed(0)
    classifier = MLPClassifier(32 + 64).eval()
    earlier, fp16 = vectors(width=32, seed=2), vectors()
    fp8 = fp16.copy()
    fp8[:10] = -fp8[:10]  # ten frames of 400 turned around: some of their calls change
    report = measure(fp16, fp8, classifier, [earlier])
    features = [torch.from_numpy(np.hstack([earlier, v])) for v in (fp16, fp8)]
    calls = [scores(classifier, f).argmax(dim=1) for f in features]
    assert report.call_changes == pytest.approx(float((calls[0] != calls[1]).float().mean()))
    assert 0 < report.call_changes <= 10 / 400
    loose = GateSettings(min_cosine_p1=-1.0)  # only the calls decide here
    with pytest.raises(FidelityError, match="of the calls changed, more than"):
        check(report, loose, "shard_0000")
    check(report, GateSettings(min_cosine_p1=-1.0, max_call_changes=0.05), "shard_0000")


def test_the_figures_become_hdf5_attributes():
    report = measure(vectors(), vectors())
    assert set(report.attributes()) == {
        "fp8_gate_frames",
        "fp8_gate_cosine_min",
        "fp8_gate_cosine_p1",
        "fp8_gate_cosine_mean",
    }
    assert GateReport.from_attributes(report.attributes()) == report
    assert GateReport.from_attributes({"precision": "fp16"}) is None


def fp8_job(demo_run, demo_models, out, gate):
    """Shard 0 of the demo run embedded again with precision fp8: the output paths."""
    h5 = {kind: out / f"shard_0000.{kind}.h5" for kind in ("dnabert_s", "esm2")}
    shards = demo_run / "shards"
    embed_shard(
        shards / "frames.tsv",
        shards / "manifest.tsv",
        "shard_0000",
        h5,
        demo_models,
        "cpu",
        precision="fp8",
        classifier_path=demo_models["classifier_500"],
        fp8_gate=gate,
    )
    return h5


def test_an_fp8_job_records_its_gate_and_embeds_as_the_fp32_job(demo_run, demo_models, tmp_path):
    h5 = fp8_job(demo_run, demo_models, tmp_path, GateSettings(min_cosine_p1=0.99))
    attrs = read_attrs(h5["esm2"])
    assert attrs["precision"] == "fp8" and attrs["fp8_gate_frames"] == attrs["rows"]
    assert attrs["fp8_gate_cosine_p1"] >= 0.99 and 0 <= attrs["fp8_gate_call_changes"] <= 0.005
    ordinals, _, fp8, _ = read_embeddings(h5["esm2"])
    fp32_ordinals, _, fp32, _ = read_embeddings(demo_run / "embeddings" / "shard_0000.esm2.h5")
    order, fp32_order = np.argsort(ordinals), np.argsort(fp32_ordinals)
    assert np.array_equal(ordinals[order], fp32_ordinals[fp32_order])
    cosine = F.cosine_similarity(torch.from_numpy(fp8[order]), torch.from_numpy(fp32[fp32_order]))
    assert cosine.min() >= 0.99


def test_the_summary_gives_the_gate_of_each_fp8_shard(demo_run, demo_models, tmp_path):
    """The demo's first shard embedded in FP8 beside its other shards in fp32, then scored and
    aggregated: the summary lists the FP8 shard's gate, and only its."""
    h5 = fp8_job(demo_run, demo_models, tmp_path, GateSettings(min_cosine_p1=0.99))
    classifier = demo_models["classifier_500"]
    embeddings = [[h5["dnabert_s"], h5["esm2"]]]
    for name in ("shard_0001", "shard_0002"):
        embeddings.append(
            [demo_run / "embeddings" / f"{name}.{kind}.h5" for kind in ("dnabert_s", "esm2")]
        )
    settings = {"classifier": classifier, "chunk_size": 500, "chunking": "overlap"}
    out = sample_outputs(tmp_path / "sample")
    aggregate_sample(
        "demo", prepared(demo_run), embeddings, out, settings, CallRule(), RegionSettings()
    )
    lines = out.summary.read_text().splitlines()
    gate = GateReport.from_attributes(read_attrs(h5["esm2"]))
    at = lines.index("FP8 fidelity gate of each shard (embedding.fp8_gate):")
    assert lines[at + 1 : at + 3] == [f"  shard_0000.esm2.h5: {gate.describe()}", ""]
    assert gate.describe().startswith(f"FP8 against fp16 on {gate.frames} frames")


def test_an_fp8_job_under_its_bar_stops_and_leaves_no_finished_file(
    demo_run, demo_models, tmp_path
):
    with pytest.raises(FidelityError, match="Set embedding.precision to fp16"):
        fp8_job(demo_run, demo_models, tmp_path, GateSettings(min_cosine_p1=1.0))
    assert not any(tmp_path.glob("*.h5"))
