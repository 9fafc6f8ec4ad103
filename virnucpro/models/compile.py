"""torch.compile for the elementwise work between a layer's matrix products and its attention
kernel (layer norms, rotary, GELU, bias and residual adds), which it fuses into a few kernels."""

import functools

import torch

# One shape per job (engine: every batch is computed in the job's one row count), so the
# kernels are compiled for exactly the shape they run: static shapes, and no tuning. Coordinate
# descent tuning buys 1.7% of the loop on ESM-2 3B (about 2 s of a shard's 140 s) but costs 19 s
# on a first run and 5 s on every later job's first batch; max-autotune buys 0.9% more for
# 100 s more (benchmarks/results/2026-11-22-h200-compile-modes.txt).
OPTIONS = {"dynamic": False}


def compiled_on_cuda(fn):
    """Run `fn(*modules, x, ...)` compiled when its tensors are on a GPU, eagerly on the CPU.
    One compilation serves every layer: the modules' weights are graph inputs."""
    compiled = None

    @functools.wraps(fn)
    def run(*args):
        nonlocal compiled
        if not next(a for a in args if isinstance(a, torch.Tensor)).is_cuda:
            return fn(*args)
        if compiled is None:
            compiled = torch.compile(fn, **OPTIONS)
        return compiled(*args)

    return run
