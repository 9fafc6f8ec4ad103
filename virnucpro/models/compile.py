"""torch.compile for the elementwise work between a layer's matrix products and its attention
kernel (layer norms, rotary, GELU, bias and residual adds), which it fuses into a few kernels."""

import functools
import threading
from contextlib import contextmanager

import torch

# One shape per job (engine: every batch is computed in the job's one row count), so the
# kernels are compiled for exactly the shape they run: static shapes, and no tuning. Coordinate
# descent tuning and max-autotune buy little of the loop on ESM-2 3B for much more compiling,
# on a first run and on every later job's first batch
# (benchmarks/results/2026-11-22-h200-compile-modes.txt).
OPTIONS = {"dynamic": False}
_this_thread = threading.local()

# torch.compile's tracing patches torch.nn.Module.__call__ and raises a flag for the whole
# process (torch.fx), so a model called from another thread meanwhile runs into the tracer
# and fails ("FX to symbolically trace a dynamo-optimized function", tests/test_gpu.py). An
# embedding job computes with one model while it brings the next up, so a model is called
# (compiling or queueing a batch: milliseconds, the GPU computes after) only under this lock.
MODEL_CALLS = threading.Lock()


@contextmanager
def eager_in_this_thread():
    """The functions of compiled_on_cuda run uncompiled in this thread for the block:
    torch.compiler.set_stance would make them so in every thread, where another model may be
    computing with its compiled kernels meanwhile (embed: ESM-2's start beside DNABERT-S)."""
    _this_thread.eager = True
    try:
        yield
    finally:
        _this_thread.eager = False


def compiled_on_cuda(fn):
    """Run `fn(*modules, x, ...)` compiled when its tensors are on a GPU, eagerly on the CPU
    (and within eager_in_this_thread). One compilation serves every layer: the modules'
    weights are graph inputs."""
    compiled = None

    @functools.wraps(fn)
    def run(*args):
        nonlocal compiled
        on_cuda = next(a for a in args if isinstance(a, torch.Tensor)).is_cuda
        if not on_cuda or getattr(_this_thread, "eager", False):
            return fn(*args)
        if compiled is None:
            compiled = torch.compile(fn, **OPTIONS)
        return compiled(*args)

    return run
