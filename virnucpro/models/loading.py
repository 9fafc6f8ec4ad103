"""Turning a checkpoint's tensors into a module: their names and shapes checked against the
module first, their values once it is on its device."""

import torch

from .pickled import Refused

READ_BYTES = 1 << 24
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# safetensors' names of the dtypes a model file of ours may hold (BatchNorm counts in int64)
SAFETENSORS_DTYPES = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "I64": torch.int64,
}
# What to do about an embedding model's file that is refused
REFETCH = (
    "Nothing in it was run. Remove it and run again (the download_model rule fetches the "
    "published file), or point the models key in config/config.yaml at a good copy."
)


def meta_shapes(make_module):
    """{name: shape} of the state dict of `make_module()`, built on the meta device (nothing
    allocated, no random initialisation computed)."""
    with torch.device("meta"):
        return {name: tuple(t.shape) for name, t in make_module().state_dict().items()}


def check_tensors(found, expected, model):
    """Refused unless each tensor of `found` ({name: (shape, dtype)}) is one of `expected`
    ({name: shape}, of the module `model` describes), of its shape and a float dtype."""
    for name, (shape, dtype) in found.items():
        if name not in expected:
            raise Refused(f"its {name} is not a tensor of {model}")
        if shape != expected[name] or dtype not in WEIGHT_DTYPES:
            raise Refused(
                f"its {name} is {dtype} {list(shape)} where {model} has a float "
                f"{list(expected[name])}"
            )


def materialize(make_module, state, path):
    """Build a module on the meta device (no random initialisation is computed or stored) and
    give it the checkpoint's tensors as they are: on the CPU, in the checkpoint's dtype, memory-
    mapped where the checkpoint was read so. The caller moves it to its device and dtype."""
    with torch.device("meta"):
        model = make_module()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(
            f"refusing to load {path}: its weights do not fit {model.cfg} ({error}). {REFETCH}"
        ) from None
    return model.eval()


def on_device(model, device, dtype, path):
    """`model` on `device` in `dtype`; ValueError naming `path` where a weight is NaN or
    infinite there. Checked after the move, on the device: there a pass over ESM-2 3B's weights
    takes milliseconds, where on the CPU it would add seconds to every job's start; and in the
    dtype the model computes in, where too large a value has become infinite."""
    model = model.to(device=device, dtype=dtype)
    named = [(name, t) for name, t in model.state_dict().items() if t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()  # one sync
    for (name, _), ok in zip(named, finite, strict=True):
        if not ok:
            raise ValueError(
                f"refusing to load {path}: its {name} holds NaN or infinite values (as "
                f"{dtype} on {device}), which no published model does. {REFETCH}"
            )
    return model


def read_through(path):
    """Read a file once, so that it is in the page cache: a memory-mapped checkpoint's tensors
    then reach the GPU from memory, not from disk, and this process keeps no copy."""
    buffer = bytearray(READ_BYTES)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
