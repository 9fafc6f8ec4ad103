"""What FP8 can give ESM-2 3B, product by product and layer by layer: the four matrix products
of one layer at a job's batch (98,304 tokens) in fp16 and in row-wise scaled e4m3
(torch._scaled_mm: accumulated exactly or with Hopper's fast accumulation, bias in the product
or after it), their time and per-row cosine against fp32; then one whole layer (the compiled
code between two attention kernels: a block's output and FFN, the next one's attention
inputs) in fp16 and FP8, timed, with its GPU kernel time by kernel.
Random weights of ESM-2's scale, random activations.

    python benchmarks/fp8_products.py > benchmarks/results/<date>-<gpu>-fp8-products.txt
"""

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from virnucpro.models import esm2
from virnucpro.models.architectures import ESM2Config
from virnucpro.models.compile import compile_blocks
from virnucpro.models.fp8 import E4M3, Fp8GeluLinear, esm2_to_fp8, quantize_rows

ROWS = 98304
DIM = 2560
SHAPES = {
    "qkv": (DIM, 3 * DIM),
    "out_proj": (DIM, DIM),
    "fc1": (DIM, 4 * DIM),
    "fc2": (4 * DIM, DIM),
}
CHECKED_ROWS = 4096  # rows compared with fp32


def milliseconds(fn, repeats=20):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def cosine_p1(y, reference):
    cos = F.cosine_similarity(y[:CHECKED_ROWS].float(), reference, dim=1)
    return float(torch.quantile(cos, 0.01))


def product_variants(x, w, b):
    """{label: function computing x W^T + b} in fp16 and in FP8 ways."""
    qx, sx = quantize_rows(x)
    qw, sw = quantize_rows(w)
    sw = sw.t().contiguous()

    def fp8(fast, bias_inside, out_dtype=torch.bfloat16):
        def run():
            y = torch._scaled_mm(
                qx,
                qw.t(),
                scale_a=sx,
                scale_b=sw,
                bias=b.to(out_dtype) if bias_inside else None,
                out_dtype=out_dtype,
                use_fast_accum=fast,
            )
            return y if bias_inside else y + b.to(out_dtype)

        return run

    variants = {"fp16": lambda: F.linear(x, w, b)}
    for fast in (False, True):
        for inside in (False, True):
            variants[f"fp8 fast={fast} bias_in={inside}"] = fp8(fast, inside)
    variants["fp8 fp16-out fast=True bias_in=True"] = fp8(True, True, torch.float16)
    quantize = torch.compile(quantize_rows)
    variants["quantize the input alone (compiled)"] = lambda: quantize(x)[0]
    return variants


def products():
    print(f"== matrix products, {ROWS} rows: ms, TFLOP/s, per-row cosine vs fp32 (1st pct)")
    for name, (k, n) in SHAPES.items():
        x = torch.randn(ROWS, k, device="cuda", dtype=torch.float16)
        w = (torch.randn(n, k, device="cuda") * k**-0.5).half()
        b = (torch.randn(n, device="cuda") * 0.1).half()
        reference = F.linear(x[:CHECKED_ROWS].float(), w.float(), b.float())
        flop = 2 * ROWS * k * n
        for label, fn in product_variants(x, w, b).items():
            ms = milliseconds(fn)
            if label.startswith("quantize"):
                print(f"{name:8s} {label:38s} {ms:7.3f} ms")
                continue
            cos = cosine_p1(fn(), reference)
            print(f"{name:8s} {label:38s} {ms:7.3f} ms {flop / ms / 1e9:7.1f} {cos:.6f}")


class GeluOutputPeak(Fp8GeluLinear):
    """Fp8GeluLinear taking its scale from the max of the GELU's output, computed twice."""

    def quantized_input(self, x):
        return quantize_rows(self.activation(x))


def layer_kernels(label, run):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    totals = defaultdict(float)
    for event in prof.key_averages():
        totals[event.key] += event.self_device_time_total
    whole = sum(totals.values())
    print(f"-- {label}: GPU kernel time {whole / 1e3:.2f} ms")
    for key, us in sorted(totals.items(), key=lambda kv: -kv[1])[:10]:
        print(f"   {us / 1e3:8.3f} ms {100 * us / whole:5.1f}%  {key[:110]}")


def two_layers(fc2_type=None):
    """Two ESM-2 3B blocks of seeded random weights, in fp16 or (given the type of fc2) FP8,
    compiled as a job compiles them."""
    torch.manual_seed(0)
    cfg = ESM2Config(num_layers=2, embed_dim=DIM, attention_heads=40, token_dropout=True)
    model = esm2.ESM2(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=DIM**-0.5)
    model = model.half().cuda()
    if fc2_type is not None:
        esm2_to_fp8(model)
        for block in model.layers:
            block.fc2.__class__ = fc2_type
    return compile_blocks(model).layers


def layers():
    print(f"\n== one ESM-2 3B layer between attention kernels, {ROWS} rows")
    x = torch.randn(ROWS, DIM, device="cuda", dtype=torch.float16)
    attended = torch.randn(ROWS, 40, 64, device="cuda", dtype=torch.float16)
    positions = torch.arange(ROWS, device="cuda") % 52
    inv_freq = 1.0 / 10000 ** (torch.arange(0, 64, 2, device="cuda").float() / 64)
    cos, sin = esm2.rotary_tables(positions, inv_freq)
    reference = None
    variants = {
        "fp16": None,
        "fp8 (models.fp8)": Fp8GeluLinear,
        "fp8, GELU peak from its output": GeluOutputPeak,
    }
    for label, fc2_type in variants.items():
        blocks = two_layers(fc2_type)

        def run(blocks=blocks):
            out = blocks[0].output_and_mlp(x, attended)
            return out, *blocks[1].attention_inputs(out, cos, sin)

        out = run()[0].float()
        reference = out if reference is None else reference
        cos_p1 = float(torch.quantile(F.cosine_similarity(out, reference)[:65536], 0.01))
        ms = milliseconds(run, 10)
        print(f"{label:32s} {ms:8.3f} ms per layer; cosine vs fp16 1st pct {cos_p1:.6f}")
        layer_kernels(label, run)


def main():
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, e4m3 {E4M3}")
    products()
    with torch.inference_mode():
        layers()


if __name__ == "__main__":
    main()
