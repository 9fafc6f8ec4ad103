"""torch.compile for the elementwise work between a layer's matrix products and its attention
kernel (layer norms, rotary, GELU, bias and residual adds), which it fuses into a few kernels."""

import functools

import torch


def compiled_on_cuda(fn):
    """Run `fn(module, x, ...)` compiled, for any token count, when `x` is on a GPU; eagerly on
    the CPU. One compilation serves every layer: the module's weights are graph inputs."""
    compiled = None

    @functools.wraps(fn)
    def run(module, x, *args):
        nonlocal compiled
        if not x.is_cuda:
            return fn(module, x, *args)
        if compiled is None:
            compiled = torch.compile(fn, dynamic=True)
        return compiled(module, x, *args)

    return run
