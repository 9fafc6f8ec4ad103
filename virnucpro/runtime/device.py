"""Which device and number format an embedding job computes in."""

import torch

PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# ESM-2's linear layers in FP8, everything else in fp16 (models.fp8)
FP8 = "fp8"
FP8_CAPABILITY = (8, 9)  # Ada and Hopper and later have FP8 matrix units


def resolve_device(name="auto"):
    """`auto` takes the GPU the job was given (CUDA_VISIBLE_DEVICES) and the CPU without one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("embedding.device is 'cuda' but this job sees no CUDA device")
    return torch.device(name)


def resolve_dtype(precision, device):
    """`auto` is FP16 on a GPU and FP32 on the CPU, where half precision is slow; `fp8` loads
    the models in FP16, then turns ESM-2's linear layers to FP8."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return torch.float16 if precision == FP8 else PRECISIONS[precision]


def check_fp8(device):
    """RuntimeError on a GPU without FP8 matrix units. The CPU computes FP8 products too
    (slowly: for tests)."""
    if device.type != "cuda":
        return
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        raise RuntimeError(
            f"embedding.precision is fp8, but this GPU ({name}, compute capability "
            f"{capability[0]}.{capability[1]}) has no FP8 matrix units (8.9 or newer: Ada, "
            "Hopper): set embedding.precision to fp16 (or auto)"
        )


def dtype_name(dtype):
    return next(name for name, value in PRECISIONS.items() if value == dtype)
