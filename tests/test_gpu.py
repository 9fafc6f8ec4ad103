"""GPU paths at full size, against FP32 references on the same random weights. These run on the
device machine (`pytest -m gpu`); the CPU suite deselects them."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_embed_job import RecordingLease
from torch import nn
from torch._dynamo.eval_frame import _debug_get_cache_entry_list

from virnucpro.calls.fidelity import GateReport, GateSettings
from virnucpro.calls.scoring import score_files
from virnucpro.demo.random_checkpoints import write_dnabert_s, write_esm2, write_pickled_classifier
from virnucpro.io.h5store import open_embeddings, read_attrs, read_embeddings
from virnucpro.models import attention, dnabert_s, esm2
from virnucpro.models.architectures import DNABertConfig
from virnucpro.models.checkpoints import dnabert_s_weights_file, load_classifier
from virnucpro.models.dnabert_s import alibi_slopes
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.models.fp8 import Fp8GeluLinear, Fp8Linear, esm2_to_fp8
from virnucpro.models.packing import PackedBatch
from virnucpro.runtime.engine import embed_all
from virnucpro.stages.embed import embed_shard

from conftest import REAL_DNABERT_S, REPO
from reference import dnabert as dnabert_reference
from reference import fair_esm
from stages import write_frame_table

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
AMINO_ACIDS = list("ACDEFGHIKLMNPQRSTVWY")


def proteins(n, low, high, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(AMINO_ACIDS, size=k)) for k in rng.integers(low, high + 1, n)]


def cosines(a, b):
    return torch.nn.functional.cosine_similarity(torch.as_tensor(a), torch.as_tensor(b), dim=1)


def report(name, a, b):
    cos = cosines(a, b)
    diff = (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()
    print(f"{name}: min cosine {cos.min():.6f}, mean {cos.mean():.6f}, max |diff| {diff:.3e}")
    return cos.min().item()


@pytest.fixture(scope="module")
def esm2_3b(tmp_path_factory):
    """Random ESM-2 3B weights in a fair-esm checkpoint."""
    root = tmp_path_factory.mktemp("esm2_3b")
    return write_esm2(root / "esm2_t36_3B_UR50D.pt", 36, 2560, 40, seed=3, device="cuda")


def test_esm2_3b_fp16_matches_fair_esm_fp32(esm2_3b):
    checkpoint = esm2_3b
    sequences = proteins(40, 1, 1100) + proteins(40, 166, 166, seed=1)
    model, alphabet = fair_esm.load(checkpoint, CUDA)
    expected = fair_esm.embed(model, alphabet, sequences).cpu()
    del model
    torch.cuda.empty_cache()
    tokens = ProteinEncoder.tokenize(checkpoint, sequences)
    for precision, floor in (
        (torch.float16, 0.999),
        (torch.bfloat16, 0.99),
        (torch.float32, 0.99999),
    ):
        encoder = ProteinEncoder.load(checkpoint, CUDA, precision)
        packed, _ = embed_all(encoder, tokens, CUDA, 16384)
        assert report(f"ESM-2 3B {precision} vs fair-esm fp32", packed, expected) >= floor
        if precision == torch.float16:
            alone, _ = embed_all(encoder, tokens, CUDA, 1)
            assert report("ESM-2 3B fp16 packed vs one at a time", packed, alone) >= 0.999
        del encoder
        torch.cuda.empty_cache()


def test_dnabert_s_fp16_matches_the_fp32_reference(tmp_path):
    directory = write_dnabert_s(
        tmp_path / "DNABERT-S",
        DNABertConfig(),
        REAL_DNABERT_S / "tokenizer.json",
        seed=4,
        device="cuda",
    )
    rng = np.random.default_rng(2)
    sequences = ["".join(rng.choice(list("ACGT"), size=k)) for k in rng.integers(1, 502, 120)]
    tokens = NucleotideEncoder.tokenize(directory, sequences)
    state = {
        k: v.to(CUDA)
        for k, v in torch.load(dnabert_s_weights_file(directory), weights_only=True).items()
    }
    with torch.no_grad():
        expected = torch.stack(
            [
                dnabert_reference.embed_one(state, torch.as_tensor(t, device=CUDA), 12)
                for t in tokens
            ]
        ).cpu()
    encoder = NucleotideEncoder.load(directory, CUDA, torch.float16)
    packed, _ = embed_all(encoder, tokens, CUDA, 8192)
    alone, _ = embed_all(encoder, tokens, CUDA, 1)
    assert report("DNABERT-S fp16 vs reference fp32", packed, expected) >= 0.999
    assert report("DNABERT-S fp16 packed vs one at a time", packed, alone) >= 0.999


def padded_fp32(batch, q, k, v, slopes=None):
    rows = attention.PaddedRows(batch, slopes, torch.float32)
    return rows.unpad(rows(rows.pad(q.float()), rows.pad(k.float()), rows.pad(v.float()), 0.125))


def random_qkv(lengths):
    batch = PackedBatch.from_token_lists([np.zeros(n, dtype=np.int64) for n in lengths]).to(CUDA)
    qkv = [torch.randn(sum(lengths), 12, 64, device=CUDA, dtype=torch.float16) for _ in range(3)]
    return batch, qkv


@pytest.mark.parametrize("extra_rows", [0, 40, 5000], ids=["exact", "filler", "long-filler"])
@pytest.mark.parametrize(
    "lengths", [[1, 7, 166, 168, 500, 33], [168] * 40], ids=["varlen", "uniform-dense"]
)
def test_packed_kernels_match_padded_attention(lengths, extra_rows):
    """Real rows attend only to their own sequence whatever filler rows the batch is computed
    in; filler rows stay finite (and are zero where the dense kernel leaves them out)."""
    torch.manual_seed(0)
    batch, (q, k, v) = random_qkv(lengths)
    rows = sum(lengths) + extra_rows
    padded = PackedBatch.from_token_lists(
        [np.zeros(n, dtype=np.int64) for n in lengths], rows=rows
    ).to(CUDA)
    layout = attention.rows_for(padded, torch.float16)
    assert isinstance(layout, attention.PackedRows) and layout.uniform == (len(set(lengths)) == 1)
    got = layout(*(layout.pad(t) for t in (q, k, v)), 0.125)
    assert got.shape[0] == rows and torch.isfinite(got).all()
    torch.testing.assert_close(
        layout.unpad(got).float(), padded_fp32(batch, q, k, v), atol=2e-3, rtol=2e-3
    )
    if layout.uniform and extra_rows:
        assert not got[sum(lengths) :].any()


def test_flash_attn_with_alibi_matches_padded_attention():
    pytest.importorskip("flash_attn", reason="flash-attn is an optional accelerator")
    torch.manual_seed(0)
    batch, (q, k, v) = random_qkv([3, 120, 77, 501])
    slopes = alibi_slopes(12).to(CUDA)
    got = attention.rows_for(batch, torch.float16, slopes)(q, k, v, 0.125)
    expected = padded_fp32(batch, q, k, v, slopes)
    torch.testing.assert_close(got.float(), expected, atol=2e-3, rtol=2e-3)


def test_real_out_of_memory_halves_the_budget(esm2_3b):
    """With all but 12 GiB of the GPU taken, a 512k-token ESM-2 3B batch cannot fit."""
    tokens = ProteinEncoder.tokenize(esm2_3b, proteins(3000, 166, 166, seed=5))
    encoder = ProteinEncoder.load(esm2_3b, CUDA, torch.float16)
    expected, _ = embed_all(encoder, tokens, CUDA, 16384)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    ballast = torch.empty(free - 12 * 2**30, dtype=torch.uint8, device=CUDA)
    try:
        got, stats = embed_all(encoder, tokens, CUDA, 2**19)
    finally:
        del ballast
    print(stats.summary())
    assert stats.out_of_memory_retries >= 1 and stats.batch_tokens < 2**19
    assert report("after out-of-memory retries vs plain", got, expected) >= 0.9999


def one_shard(directory, frames=6000):
    """A shard of `frames` frames of 166 residues (and random 499 bp DNA) in `directory`, with
    full-size DNABERT-S weights and a 3328-feature classifier: (frames, manifest, models,
    classifier)."""
    dnabert = write_dnabert_s(
        directory / "DNABERT-S", DNABertConfig(), REAL_DNABERT_S / "tokenizer.json", device="cuda"
    )
    rng = np.random.default_rng(6)
    sequences = proteins(frames, 166, 166, seed=6)
    dna = ["".join(rng.choice(list("ACGT"), size=499)) for _ in sequences]
    table, manifest = write_frame_table(
        [(f"f{i}", dna[i], sequence) for i, sequence in enumerate(sequences)], directory
    )
    classifier = write_pickled_classifier(directory / "500_model.pth", 768 + 2560)
    return table, manifest, dnabert, classifier


class MeasuringLease(RecordingLease):
    """A RecordingLease that also records the GPU memory still allocated at its release."""

    def release(self):
        if self.held:
            self.events.append(("allocated", torch.cuda.memory_allocated()))
        super().release()


def test_an_embedding_job_keeps_the_gpu_busy(esm2_3b, tmp_path):
    """One shard through both full-size models as a job runs it: every batch in one row count,
    the GPU busy, the two files in one row order, and the scores it computed on the way the
    ones the stored vectors give. The job gives the GPU its memory back (ESM-2 3B's 5.6 GB of
    weights among it) and then its lease, before its files are finished."""
    frames, manifest, dnabert, classifier = one_shard(tmp_path)
    h5 = {kind: tmp_path / f"{kind}.h5" for kind in ("dnabert_s", "esm2")}
    models = {"dnabert_s": dnabert, "esm2": esm2_3b}
    events = []
    lease = MeasuringLease(False, events, list(h5.values()))
    stats = embed_shard(
        frames, manifest, "shard_0000", h5, models, "cuda", classifier_path=classifier, lease=lease
    )
    ((_, allocated),) = events[-2:-1]
    print(f"GPU memory allocated at the lease's release: {allocated / 2**20:.0f} MiB")
    assert events[-1] == ("released", [False, False]) and allocated < 512 * 2**20
    for kind, run in stats.items():
        print(kind, run.summary())
        attrs = read_attrs(h5[kind])
        assert attrs["precision"] == "fp16" and attrs["gpu_busy"] == run.gpu_busy
        assert attrs["rows_per_batch"] == run.rows >= run.batch_tokens
    assert stats["esm2"].gpu_busy >= 0.9
    assert read_embeddings(h5["esm2"])[0].tolist() == read_embeddings(h5["dnabert_s"])[0].tolist()
    model = load_classifier(classifier)
    with open_embeddings(h5["dnabert_s"]) as dna, open_embeddings(h5["esm2"]) as protein:
        recomputed = score_files(model, [dna["embedding"], protein["embedding"]], classifier)
        np.testing.assert_array_equal(protein["scores"][:], recomputed)


def test_fp8_layers_compute_their_products_and_agree_with_the_float_layers():
    """Each FP8 layer at ESM-2 3B's widths against the FP32 product of its own quantized
    operands (what the kernel is to compute: scales, bias, the GELU), and against the float
    layer it replaces (what quantizing costs), per row."""
    torch.manual_seed(7)
    cases = (
        (Fp8Linear, nn.Linear(2560, 7680), lambda x: x),  # qkv
        (Fp8GeluLinear, nn.Linear(10240, 2560), F.gelu),  # fc2, the GELU before it
    )
    for layer_type, dense, activation in cases:
        dense = dense.to(CUDA).half()
        x = torch.randn(8192, dense.in_features, device=CUDA, dtype=torch.float16)
        layer = layer_type(dense)
        got = layer(x)
        quantized, scale = layer.quantized_input(x)
        weight = layer.weight.float() * layer.weight_scale.t()
        exact = (quantized.float() * scale) @ weight.t() + layer.bias.float()
        float_layer = F.linear(activation(x.float()), dense.weight.float(), dense.bias.float())
        assert got.dtype == torch.float16
        name = layer_type.__name__
        assert report(f"{name} vs its quantized operands in fp32", got.float(), exact) >= 0.99999
        assert report(f"{name} vs the float layer", got.float(), float_layer) >= 0.998


def test_esm2_3b_fp8_agrees_with_fair_esm_fp32(esm2_3b):
    """The whole model with FP8 linear layers, on the frames of reads (50 residues) and of
    500 bp chunks (166): per-sequence cosine against fair-esm's FP32 model."""
    sequences = proteins(300, 50, 50, seed=8) + proteins(200, 166, 166, seed=9)
    model, alphabet = fair_esm.load(esm2_3b, CUDA)
    expected = fair_esm.embed(model, alphabet, sequences).cpu()
    del model
    torch.cuda.empty_cache()
    encoder = ProteinEncoder.load(esm2_3b, CUDA, torch.float16)
    esm2_to_fp8(encoder.model)
    vectors, _ = embed_all(encoder, ProteinEncoder.tokenize(esm2_3b, sequences), CUDA, 98304)
    cos = cosines(vectors, expected)
    print(f"ESM-2 3B FP8 vs fair-esm fp32: min {cos.min():.6f}, 1st pct {cos.quantile(0.01):.6f}")
    assert report("ESM-2 3B FP8 vs fair-esm fp32", vectors, expected) >= 0.995


def test_an_fp8_embedding_job_records_its_gate_and_runs_in_fp8(esm2_3b, tmp_path, monkeypatch):
    frames, manifest, dnabert, classifier = one_shard(tmp_path)
    h5 = {kind: tmp_path / f"{kind}.h5" for kind in ("dnabert_s", "esm2")}
    models = {"dnabert_s": dnabert, "esm2": esm2_3b}
    gate = GateSettings(min_cosine_p1=0.99)  # random weights: see test_esm2_3b_fp8_agrees...
    torch._dynamo.reset()
    graphs = graphs_when_dropped(monkeypatch)
    stats = embed_shard(
        *(frames, manifest, "shard_0000", h5, models, "cuda"),
        precision="fp8",
        classifier_path=classifier,
        fp8_gate=gate,
    )
    attrs = read_attrs(h5["esm2"])
    measured = GateReport.from_attributes(attrs)
    print(stats["esm2"].summary(), measured.describe(), sep="\n")
    assert attrs["precision"] == "fp8" and read_attrs(h5["dnabert_s"])["precision"] == "fp16"
    assert measured.frames == 2000 and measured.cosine_p1 >= 0.99
    assert 0 <= measured.call_changes <= 0.005
    assert stats["esm2"].gpu_busy >= 0.9 and stats["esm2"].recomputed_in_fp32 == 0
    # the gate's fp16 reference computed uncompiled (beside DNABERT-S's compiled loop), its
    # FP8 sample and the loop in the kernels ESM-2's warm-up compiled
    assert graphs == [[1] * len(COMPILED)]


# the block methods models.compile compiles on a GPU: ESM-2's two, DNABERT-S's one
COMPILED = (esm2.Block.attention_inputs, esm2.Block.output_and_mlp, dnabert_s.Layer.output_and_mlp)


def graphs_when_dropped(monkeypatch):
    """compiled_shapes() as the job drops its compiled graphs (embed._free_gpu resets the
    compiler once its loops are done), one list per reset."""
    counts, reset = [], torch._dynamo.reset

    def count_then_reset():
        counts.append(compiled_shapes())
        reset()

    monkeypatch.setattr(torch._dynamo, "reset", count_then_reset)
    return counts


def compiled_shapes():
    """How many compiled variants (shapes, dtypes, ...) the compiler holds of each function."""
    return [len(_debug_get_cache_entry_list(fn.__code__)) for fn in COMPILED]


@pytest.mark.parametrize("free", [True, False], ids=["free-at-start", "busy-at-start"])
def test_the_warm_up_compiles_the_kernels_the_loops_run(tmp_path, free, monkeypatch):
    """A job warms each model up on a batch of filler in its loop's row count (the first model
    beside the CPU phase where the GPU is free at its start, by the manifest's longest frame;
    else after it, by the tokens): one graph per compiled function, none compiled again for a
    real batch (so the first batch takes no compiling), though ESM-2 compiles in a thread of
    its own beside DNABERT-S's loop."""
    frames, manifest, dnabert, _ = one_shard(tmp_path, frames=3000)
    models = {"dnabert_s": dnabert, "esm2": write_esm2(tmp_path / "esm2_t6.pt", 6, 320, 20)}
    h5 = {kind: tmp_path / f"{kind}.h5" for kind in models}
    torch._dynamo.reset()
    graphs = graphs_when_dropped(monkeypatch)
    lease = RecordingLease(free, [], list(h5.values()))
    stats = embed_shard(frames, manifest, "shard_0000", h5, models, "cuda", lease=lease)
    for kind, run in stats.items():
        attrs = read_attrs(h5[kind])
        print(kind, f"warm-up {attrs['warm_up_seconds']:.2f} s;", run.summary())
        assert attrs["warm_up_seconds"] > 0 and run.batches > 1
    assert graphs == [[1] * len(COMPILED)]


def test_an_fp16_job_stores_float16_vectors_close_to_an_fp32_job(esm2_3b, tmp_path):
    """Vectors computed in fp16 and stored in float16 against the same job in fp32: per frame,
    cosine at least 0.9999 (fp16's alone: 0.99998 for DNABERT-S, 1.000000 for ESM-2 3B,
    benchmarks/results/2026-11-22-h200-gpu-tests-fp8.txt; float16's rounding adds at most
    2**-11 of each value) and every value within 5% of the frame's largest magnitude; the
    scores the job stored are those of the stored vectors."""
    frames, manifest, dnabert, classifier = one_shard(tmp_path, frames=1000)
    models = {"dnabert_s": dnabert, "esm2": esm2_3b}
    vectors = {}
    for precision in ("fp16", "fp32"):
        h5 = {kind: tmp_path / f"{precision}.{kind}.h5" for kind in models}
        embed_shard(
            *(frames, manifest, "shard_0000", h5, models, "cuda"),
            precision=precision,
            classifier_path=classifier,
        )
        for kind, path in h5.items():
            with open_embeddings(path) as stored:
                assert stored["embedding"].dtype == (
                    np.float16 if precision == "fp16" else np.float32
                )
            vectors[precision, kind] = read_embeddings(path)[2]
        with open_embeddings(h5["dnabert_s"]) as dna, open_embeddings(h5["esm2"]) as protein:
            recomputed = score_files(
                load_classifier(classifier), [dna["embedding"], protein["embedding"]], classifier
            )
            np.testing.assert_array_equal(protein["scores"][:], recomputed)
    for kind in models:
        half, full = vectors["fp16", kind], vectors["fp32", kind]
        assert report(f"{kind} fp16 stored as float16 vs fp32", half, full) >= 0.9999
        relative = np.abs(half - full) / np.abs(full).max(axis=1, keepdims=True)
        print(f"{kind}: largest |fp16 - fp32| of a frame's largest {relative.max():.2e}")
        assert relative.max() <= 0.05, kind


def test_a_job_that_starts_seeing_no_gpu_computes_on_the_one_it_leases(tmp_path):
    """No CUDA call before the lease, imports and the compiler's among them: the driver is not
    started when a job tries its lease (at its start) or takes it (after its CPU phase, the GPU
    busy at its start), and the job computes on the device its lease names (a CUDA call before
    would have fixed the devices it sees to every one). The child starts as a local run starts
    a job, every device visible; a process started with CUDA_VISIBLE_DEVICES empty sees none
    on this machine even where nothing started CUDA before the variable changed."""
    frames, manifest, dnabert, _ = one_shard(tmp_path, frames=200)
    esm = write_esm2(tmp_path / "esm2_t6.pt", 6, 320, 20)
    device = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    for free in (True, False):
        script = f"""
            import ctypes

            from virnucpro.runtime.gpu_lease import GpuLease
            from virnucpro.stages.embed import embed_shard

            driver = ctypes.CDLL("libcuda.so.1")

            def unstarted():
                # CUDA_ERROR_NOT_INITIALIZED (3) until something has started the driver
                return driver.cuDeviceGetCount(ctypes.byref(ctypes.c_int())) == 3

            class Lease(GpuLease):
                def try_take(self):
                    assert unstarted(), "CUDA started before the job tried its lease"
                    return {free} and super().try_take()

                def take(self):
                    assert unstarted(), "CUDA started before the job took its lease"
                    return super().take()

            h5 = {{k: "{tmp_path}/{free}." + k + ".h5" for k in ("dnabert_s", "esm2")}}
            models = {{"dnabert_s": "{dnabert}", "esm2": "{esm}"}}
            lease = Lease([{device!r}], "{tmp_path}/leases")
            embed_shard("{frames}", "{manifest}", "shard_0000", h5, models, "cuda", lease=lease)
        """
        # the repository first, then what the caller's path holds (a GPU machine's own packages)
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        env["PYTHONPATH"] = path
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert read_attrs(tmp_path / f"{free}.esm2.h5")["device"] == "cuda"


def test_a_fit_on_the_gpu_repeats_itself_and_learns_as_the_cpu_fit_does(monkeypatch):
    """The classifier trains on the GPU where a job has one, its steps replayed from a CUDA
    graph: the same seed gives the same weights, byte for byte; they are those of the same
    steps taken eagerly on the GPU, within float tolerance, over 12 epochs (the graph captured
    again when the learning rate falls after the 10th). The GPU draws its dropout masks from its
    own generator, so its weights are not the CPU fit's; its loss curve is, within 2% (2,000
    frames at 3,328 features, the published width), and its metrics of one model are the CPU's
    within float tolerance."""
    from virnucpro.training import fit as training

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2_250, 768 + 2560, generator=generator)
    labels = (features[:, :16].sum(dim=1) > 0).long()  # a signal the MLP can find
    train, test = slice(0, 2_000), slice(2_000, None)

    def fit(device):
        data = [
            t.to(device) for t in (features[train], labels[train], features[test], labels[test])
        ]
        return training.fit_classifier(*data, seed=5, max_epochs=12)[:2]

    (gpu, gpu_history), (again, _), (_, cpu_history) = fit(CUDA), fit(CUDA), fit("cpu")
    assert len(gpu_history) == 12  # no early stop: the schedule's step is in it
    monkeypatch.setattr(training, "_GraphedSteps", training._Steps)
    eager, eager_history = fit(CUDA)
    gpu_state, again_state, eager_state = (m.state_dict() for m in (gpu, again, eager))
    assert all(torch.equal(gpu_state[name], again_state[name]) for name in gpu_state)
    largest = max((gpu_state[n].float() - eager_state[n].float()).abs().max() for n in gpu_state)
    print(f"graphed against eager steps on the GPU: largest difference {largest:.3e}")
    for name in gpu_state:
        torch.testing.assert_close(gpu_state[name], eager_state[name], rtol=1e-5, atol=1e-6)
    print(
        f"test loss by epoch, GPU {[round(r['loss'], 5) for r in gpu_history]}, CPU "
        f"{[round(r['loss'], 5) for r in cpu_history]}"
    )
    for row, cpu_row in zip(gpu_history, cpu_history, strict=True):
        assert row["loss"] == pytest.approx(cpu_row["loss"], rel=0.02)
    on_gpu = training.evaluate(gpu, features[test].to(CUDA), labels[test].to(CUDA))
    on_cpu = training.evaluate(gpu.cpu(), features[test], labels[test])
    assert on_gpu == pytest.approx(on_cpu, rel=1e-5)
