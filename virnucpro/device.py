"""Which device and number format an embedding job computes in."""

import torch

PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(name="auto"):
    """`auto` takes the GPU the job was given (CUDA_VISIBLE_DEVICES) and the CPU without one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("embedding.device is 'cuda' but this job sees no CUDA device")
    return torch.device(name)


def resolve_dtype(precision, device):
    """`auto` is FP16 on a GPU and FP32 on the CPU, where half precision is slow."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return PRECISIONS[precision]


def dtype_name(dtype):
    return next(name for name, value in PRECISIONS.items() if value == dtype)
