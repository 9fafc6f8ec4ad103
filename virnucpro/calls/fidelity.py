"""The FP8 path's check of itself on the weights it runs with: a job embeds a fixed sample of its
frames both in fp16 and in FP8 and compares them, per sequence (cosine) and by what the
classifier calls them. No one can say in advance how FP8 treats a model's real activations, so
every FP8 job measures it, records it, and stops where it is not good enough."""

from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class GateSettings:
    """embedding.fp8_gate: how many frames to compare (the first by ordinal) and the bars."""

    frames: int = 2000
    min_cosine_p1: float = 0.999  # per-sequence cosine of FP8 against fp16, 1st percentile
    max_call_changes: float = 0.005  # fraction of the frames whose call changes


_PREFIX = "fp8_gate_"


@dataclass(frozen=True)
class GateReport:
    """What a job measured of its FP8 vectors against fp16 on the same frames."""

    frames: int
    cosine_min: float
    cosine_p1: float
    cosine_mean: float
    call_changes: float | None  # None without a classifier to call with

    def attributes(self):
        """The figures as HDF5 attributes, prefixed fp8_gate_ (None left out)."""
        return {f"{_PREFIX}{k}": v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_attributes(cls, attrs):
        """The report an embedding file's attributes hold, or None (not an FP8 file)."""
        if f"{_PREFIX}frames" not in attrs:
            return None
        values = {f.name: attrs.get(f"{_PREFIX}{f.name}") for f in fields(cls)}
        # HDF5 gives numpy scalars: plain numbers, as measure() makes them
        return cls(**{k: None if v is None else np.asarray(v).item() for k, v in values.items()})

    def describe(self):
        calls = (
            "no classifier to compare calls with"
            if self.call_changes is None
            else f"{self.call_changes:.2%} of their calls changed"
        )
        return (
            f"FP8 against fp16 on {self.frames} frames: per-sequence cosine min "
            f"{self.cosine_min:.6f}, 1st percentile {self.cosine_p1:.6f}, mean "
            f"{self.cosine_mean:.6f}; {calls}"
        )


class FidelityError(RuntimeError):
    """The FP8 vectors of a shard's sample are too far from fp16's."""


def measure(fp16_vectors, fp8_vectors, classifier=None, earlier=()):
    """The GateReport of one model's FP8 vectors against its fp16 vectors of the same frames
    ([N, D] each, rows in one order). With `classifier` (an MLPClassifier over the features of
    the models before this one, `earlier`: their vectors of the same frames, in features order,
    then this model's), also the fraction of frames whose call (virus score > others) differs."""
    fp16 = np.asarray(fp16_vectors, dtype=np.float64)
    fp8 = np.asarray(fp8_vectors, dtype=np.float64)
    if fp16.shape != fp8.shape or not len(fp16):
        raise ValueError(f"the gate compares vectors of one shape: {fp16.shape}, {fp8.shape}")
    norms = np.maximum(np.linalg.norm(fp16, axis=1) * np.linalg.norm(fp8, axis=1), 1e-300)
    cosine = np.einsum("ij,ij->i", fp16, fp8) / norms
    call_changes = None
    if classifier is not None:
        # imported here: the report reads GateReports and need not import torch
        import torch

        from ..models.classifier import scores

        def calls(vectors):
            features = np.concatenate([*earlier, vectors], axis=1)
            return scores(classifier, torch.as_tensor(features, dtype=torch.float32)).argmax(1)

        call_changes = float((calls(fp16) != calls(fp8)).float().mean())
    return GateReport(
        frames=len(fp16),
        cosine_min=float(cosine.min()),
        cosine_p1=float(np.percentile(cosine, 1)),
        cosine_mean=float(cosine.mean()),
        call_changes=call_changes,
    )


def check(report, settings, shard):
    """FidelityError unless `report` clears `settings`' bars; its message says what was
    measured, which bar it missed, and how to go back to fp16."""
    missed = []
    if report.cosine_p1 < settings.min_cosine_p1:
        missed.append(
            f"the 1st percentile of the cosine, {report.cosine_p1:.6f}, is under "
            f"embedding.fp8_gate.min_cosine_p1 {settings.min_cosine_p1}"
        )
    if report.call_changes is not None and report.call_changes > settings.max_call_changes:
        missed.append(
            f"{report.call_changes:.2%} of the calls changed, more than "
            f"embedding.fp8_gate.max_call_changes {settings.max_call_changes:.2%}"
        )
    if missed:
        raise FidelityError(
            f"{shard}: {report.describe()}. FP8 does not hold for these weights: "
            + "; ".join(missed)
            + ". Set embedding.precision to fp16 (or auto) to embed in fp16, as exactly as "
            "before; lower the thresholds only knowing what they allow."
        )
