"""torch.compile for the elementwise work on either side of a layer's attention kernel (layer
norms, rotary, GELU, bias and residual adds), which it fuses into a few kernels: the caller
that puts a model on a GPU compiles its blocks (compile_blocks); nothing is compiled at import
or on the CPU."""

import functools
import threading
import types
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
    """The methods compile_blocks compiled run uncompiled in this thread for the block:
    torch.compiler.set_stance would make them so in every thread, where another model may be
    computing with its compiled kernels meanwhile (embed: ESM-2's start beside DNABERT-S)."""
    _this_thread.eager = True
    try:
        yield
    finally:
        _this_thread.eager = False


def compile_blocks(model):
    """Where `model` (an ESM2 or a DNABertS) is on a GPU, make the methods its blocks' class
    names in COMPILED run compiled; on the CPU leave it as it is. Returns the model."""
    if not next(model.parameters()).is_cuda:
        return model
    for block in model.layers:
        for name in block.COMPILED:
            setattr(block, name, types.MethodType(_compiled(getattr(type(block), name)), block))
    return model


@functools.cache
def _compiled(method):
    """`method(block, ...)` compiled, one function for every block of its class: the block's
    weights are graph inputs, so one compilation serves every layer. Within
    eager_in_this_thread it runs uncompiled."""
    compiled = None

    @functools.wraps(method)
    def run(block, *args):
        nonlocal compiled
        if getattr(_this_thread, "eager", False):
            return method(block, *args)
        # made at the first call, not when the model reaches its device: torch.compile imports
        # the compiler, which an embedding job imports in a thread of its own meanwhile, and two
        # threads importing it at once deadlock (tests/test_gpu.py)
        if compiled is None:
            compiled = torch.compile(method, **OPTIONS)
        return compiled(block, *args)

    return run
