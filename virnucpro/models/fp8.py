"""ESM-2's linear layers in FP8 (e4m3): each weight quantized once, with one scale per output
channel, and each activation row (one token) quantized as it comes, with a scale of its own;
the product is torch._scaled_mm's row-wise scaled FP8 matrix product with the bias inside it,
accumulated by Hopper's fast FP8 accumulation and written in the model's fp16. Attention,
layer norms, the residual stream and pooling stay as they are.

At ESM-2 3B's shapes on an H200, a layer's time against fp16's, the bias inside the product
against after it, and fast accumulation's cost in accuracy are measured in
benchmarks/results/2026-11-22-h200-fp8-products.txt (summed up in 2026-11-22-fp8.md).

torch._scaled_mm directly, not torchao's float8 inference: torchao would add a dependency for
what is, for inference with dynamic row-wise activation scales, these quantizations and one
call; and torch.compile fuses each activation's quantization with the layer norm or GELU
before it, as it compiles the blocks' code (models.compile)."""

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
# the smallest scale: a row of zeros (padding) quantizes to zeros instead of dividing by zero
_MIN_SCALE = 1e-12
# |gelu(x)| for x <= 0 is at most 0.16997 (its minimum, at x = -0.7518): a bound on the negatives
_GELU_NEGATIVE_BOUND = 0.17


def quantize_rows(x, peak=None):
    """(x in e4m3, its scales [rows, 1] in fp32): each row scaled so that `peak` (by default
    its largest magnitude) is e4m3's largest, which keeps the most precision a row's range
    allows."""
    peak = x.abs().amax(dim=-1, keepdim=True) if peak is None else peak
    scale = (peak.float() / E4M3_MAX).clamp(min=_MIN_SCALE)
    return (x.float() / scale).to(E4M3), scale


class Fp8Linear(nn.Module):
    """An nn.Linear whose product runs in FP8: y = x W^T + b, in x's dtype."""

    def __init__(self, linear):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach())  # rows: output channels
        self.register_buffer("weight", weight)  # [out, in]: .t() is the column-major operand
        self.register_buffer("weight_scale", scale.t().contiguous())  # [1, out]
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def activation(self, x):
        return x

    def quantized_input(self, x):
        return quantize_rows(self.activation(x))

    def forward(self, x):
        if self.weight.dtype != E4M3:
            # cast by .float() (the engine's FP32 recompute of a batch that overflowed): the
            # same quantized weights, computed densely in that precision
            weight = self.weight * self.weight_scale.t()
            return F.linear(self.activation(x), weight.to(x.dtype), self.bias)
        quantized, scale = self.quantized_input(x)
        return torch._scaled_mm(
            quantized,
            self.weight.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=x.dtype,
            use_fast_accum=True,
        )


class Fp8GeluLinear(Fp8Linear):
    """y = gelu(x) W^T + b in FP8: ESM-2's second feed-forward layer with the GELU before it.

    The scale of a row needs the largest |gelu(x)|, which is gelu of the row's largest x, or
    under 0.17 (gelu's negative values): taking it from the row's max computes the GELU once
    per element, where taking the max of the GELU's output computes it twice (the compiled
    kernel reads a 10,240-wide row twice), a cost measured in
    benchmarks/results/2026-11-22-fp8.md."""

    def activation(self, x):
        return F.gelu(x.float())

    def quantized_input(self, x):
        peak = F.gelu(x.amax(dim=-1, keepdim=True).float()).clamp(min=_GELU_NEGATIVE_BOUND)
        return quantize_rows(self.activation(x), peak)


def esm2_to_fp8(model):
    """Turn the linear layers of every block of an ESM-2 (models.esm2.ESM2) to FP8, in place;
    the GELU between the feed-forward layers moves into the second one. Returns the model."""
    for block in model.layers:
        for name in ("qkv", "out_proj", "fc1"):
            setattr(block, name, Fp8Linear(getattr(block, name)))
        block.fc2 = Fp8GeluLinear(block.fc2)
        block.activation = nn.Identity()
    return model
