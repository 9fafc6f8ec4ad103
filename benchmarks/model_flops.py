"""The arithmetic the benchmarks measure against: model FLOPs of the sequences a run embeds,
counted per sequence from its token count, and the GPU's bf16 matrix rate measured in the run.

Per token and layer, ESM-2 does 12 d^2 multiply-adds in its four projections (q, k, v and out,
fc1 and fc2 of width 4d) and DNABERT-S 4 d^2 + 3 d i (Wqkv, out, the gated layer of width 2i,
wo); attention adds 4 d L FLOPs for a sequence of L tokens (scores and weighted sum).
"""

import time

import numpy as np
import torch


def esm2_flops(cfg, lengths):
    """FLOPs of ESM-2 (cfg: ESM2Config) over sequences of the given token counts."""
    d, tokens = cfg.embed_dim, np.asarray(lengths, dtype=np.float64)
    return cfg.num_layers * float((24 * d * d * tokens + 4 * d * tokens**2).sum())


def dnabert_flops(cfg, lengths):
    """FLOPs of DNABERT-S (cfg: DNABertConfig) over sequences of the given token counts."""
    d, i = cfg.hidden_size, cfg.intermediate_size
    tokens = np.asarray(lengths, dtype=np.float64)
    per_layer = 2 * (4 * d * d + 3 * d * i) * tokens + 4 * d * tokens**2
    return cfg.num_hidden_layers * float(per_layer.sum())


def bf16_matmul_tflops(device="cuda", size=8192, repeats=20):
    """The GPU's bf16 matrix rate: the median of `repeats` size^3 products on random data."""
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times)) / 1e12
