"""The FP8 gate's logic on the CPU: figures measured against a brute-force reference, a forced
disagreement of vectors or of calls failing the job with its message, and agreement passing."""

import numpy as np
import pytest
import torch

from virnucpro.fidelity import FidelityError, GateSettings, check, measure
from virnucpro.models.classifier import MLPClassifier, scores

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
