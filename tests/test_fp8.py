"""ESM-2's linear layers in FP8 against float references, on the CPU (torch's CPU _scaled_mm
takes the same e4m3 operands and row-wise scales as the GPU's): one layer, and a small ESM-2
whose every block is converted, against fair-esm's FP32 model on the same random weights."""

import pytest
import torch
import torch.nn.functional as F
from test_esm2 import proteins
from torch import nn

from virnucpro.demo.random_checkpoints import write_esm2
from virnucpro.models.encoders import ProteinEncoder
from virnucpro.models.fp8 import E4M3_MAX, Fp8GeluLinear, Fp8Linear, esm2_to_fp8, quantize_rows
from virnucpro.runtime.device import check_fp8
from virnucpro.runtime.engine import embed_all

from reference import fair_esm


def test_rows_are_scaled_to_e4m3s_range_and_a_zero_row_stays_zero():
    x = torch.randn(5, 64) * torch.tensor([[1e-3], [1.0], [30.0], [1e4], [0.0]])
    quantized, scale = quantize_rows(x)
    assert quantized.dtype == torch.float8_e4m3fn and scale.shape == (5, 1)
    largest = quantized.float().abs().amax(dim=1)
    assert torch.equal(largest[:4], torch.full((4,), E4M3_MAX))  # each row uses the whole range
    assert torch.equal(quantized[4].float(), torch.zeros(64))
    # e4m3 keeps 3 mantissa bits: every value within 1/16 of its row's range, relative
    restored = quantized.float() * scale
    assert torch.all((restored - x).abs() <= x.abs().amax(dim=1, keepdim=True) / 16)


def test_the_gelu_layer_scales_each_row_by_its_gelus_largest_magnitude():
    """Fp8GeluLinear takes a row's scale from gelu of the row's max (bounded below by 0.17,
    |gelu| of any negative): that is the largest |gelu| of the row, so it quantizes as the
    GELU's output itself would, and a row of negatives quantizes within e4m3's range."""
    torch.manual_seed(2)
    x = torch.randn(64, 1024) * 3
    x[-1] = -5 * torch.rand(1024)  # no value over 0: the bound sets the scale
    layer = Fp8GeluLinear(nn.Linear(1024, 16))
    quantized, scale = layer.quantized_input(x)
    expected, expected_scale = quantize_rows(F.gelu(x))
    assert torch.equal(scale[:-1], expected_scale[:-1])
    assert torch.equal(quantized[:-1].float(), expected[:-1].float())
    assert scale[-1] == 0.17 / E4M3_MAX >= expected_scale[-1]
    assert quantized[-1].float().abs().max() <= E4M3_MAX
    restored = quantized[-1].float() * scale[-1]
    assert torch.allclose(restored, F.gelu(x[-1]), atol=0.17 / 16)


def test_an_fp8_linear_agrees_with_the_float_layer_per_row():
    torch.manual_seed(0)
    linear = nn.Linear(2560, 640)  # ESM-2 3B's width; fewer outputs to keep the test quick
    x = torch.randn(512, 2560)
    expected = linear(x)
    got = Fp8Linear(linear)(x)
    cosine = F.cosine_similarity(got.float(), expected, dim=1)
    assert got.dtype == x.dtype and got.shape == expected.shape
    assert cosine.min() >= 0.998, cosine.min()


@pytest.mark.slow
def test_an_esm2_with_fp8_linears_embeds_as_fair_esm_does(tmp_path):
    path = write_esm2(tmp_path / "esm2_fp8.pt", 3, 320, 20, seed=4)
    sequences = proteins(seed=4)
    expected = fair_esm.embed(*fair_esm.load(path), sequences)
    encoder = ProteinEncoder.load(path, torch.device("cpu"), torch.float32)
    esm2_to_fp8(encoder.model)
    vectors, _ = embed_all(encoder, ProteinEncoder.tokenize(path, sequences), "cpu", 3000)
    cosine = F.cosine_similarity(torch.from_numpy(vectors), expected, dim=1)
    print(f"FP8 ESM-2 (3 layers, 320 wide) against fair-esm FP32: min cosine {cosine.min():.6f}")
    assert cosine.min() >= 0.995


def test_an_fp8_linear_cast_to_fp32_computes_its_quantized_weights_densely():
    """The engine recomputes a batch that overflowed on an FP32 copy of the model (.float()):
    the copy's layers hold the same quantized weights and compute them in FP32."""
    torch.manual_seed(1)
    layer = Fp8Linear(nn.Linear(256, 128))
    x = torch.randn(64, 256)
    weight = layer.weight.float() * layer.weight_scale.t()
    wide = layer.float()
    assert wide.weight.dtype == torch.float32
    torch.testing.assert_close(wide(x), x @ weight.t() + wide.bias)


def test_fp8_on_a_gpu_without_fp8_units_is_refused_with_the_way_back(monkeypatch):
    """No GPU without FP8 units is at hand: the driver's answers are those of an A100."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100 80GB")
    with pytest.raises(RuntimeError) as error:
        check_fp8(torch.device("cuda"))
    assert str(error.value) == (
        "embedding.precision is fp8, but this GPU (NVIDIA A100 80GB, compute capability 8.0) "
        "has no FP8 matrix units (8.9 or newer: Ada, Hopper): set embedding.precision to fp16 "
        "(or auto)"
    )
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    check_fp8(torch.device("cuda"))  # an L4 or L40S: taken
    check_fp8(torch.device("cpu"))  # the CPU computes FP8 products (slowly), for the tests
