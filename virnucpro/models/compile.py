"""torch.compile for the elementwise work between a layer's matrix products and its attention
kernel (layer norms, rotary, GELU, bias and residual adds), which it fuses into a few kernels."""

import functools

import torch

# Any token count with one compilation; max-autotune tunes the fused kernels' block sizes (and
# checks Triton against cuBLAS for the matrix products, where cuBLAS wins): ESM-2 3B on an H200
# went from 95.5k to 100.3k tokens/s (benchmarks/profile_models.py). The tuning costs a minute
# once per cache directory (embedding.compile_cache), not once per job.
OPTIONS = {"dynamic": True, "mode": "max-autotune-no-cudagraphs"}


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
