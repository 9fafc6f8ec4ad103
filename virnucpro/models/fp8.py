"""ESM-2's linear layers in FP8 (e4m3): each weight quantized once, with one scale per output
channel, and each activation row (one token) quantized as it comes, with a scale of its own;
the product is torch._scaled_mm's row-wise scaled FP8 matrix product, accumulated in fp32 and
written in bf16, the only output its row-wise scaling takes. Attention, layer norms, the
residual stream and pooling stay as they are.

torch._scaled_mm directly, not torchao's float8 inference: torchao would add a dependency for
what is, for inference with dynamic row-wise activation scales, these two quantizations and
one call; and torch.compile fuses the activation's quantization with the layer norm or GELU
before it, as it compiles the layers' code (models.esm2)."""

import torch
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
# the smallest scale: a row of zeros (padding) quantizes to zeros instead of dividing by zero
_MIN_SCALE = 1e-12


def quantize_rows(x):
    """(x in e4m3, its scales [rows, 1] in fp32): each row scaled so its largest magnitude is
    e4m3's largest, which keeps the most precision a row's range allows."""
    scale = (x.abs().amax(dim=-1, keepdim=True).float() / E4M3_MAX).clamp(min=_MIN_SCALE)
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

    def forward(self, x):
        if self.weight.dtype != E4M3:
            # cast by .float() (the engine's FP32 recompute of a batch that overflowed): the
            # same quantized weights, computed densely in that precision
            weight = self.weight * self.weight_scale.t()
            return nn.functional.linear(x, weight.to(x.dtype), self.bias)
        quantized, scale = quantize_rows(x)
        y = torch._scaled_mm(
            quantized,
            self.weight.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            out_dtype=torch.bfloat16,
        )
        y = y.to(x.dtype)
        return y if self.bias is None else y + self.bias


FP8_LINEARS = ("qkv", "out_proj", "fc1", "fc2")  # every linear layer of an ESM-2 block


def esm2_to_fp8(model):
    """Replace the linear layers of every block of an ESM-2 (models.esm2.ESM2) with Fp8Linear,
    in place; returns the model."""
    for block in model.layers:
        for name in FP8_LINEARS:
            setattr(block, name, Fp8Linear(getattr(block, name)))
    return model
