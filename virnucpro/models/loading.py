"""Turning a checkpoint's tensors into a module."""

import torch

READ_BYTES = 1 << 24


def materialize(make_module, state, path):
    """Build a module on the meta device (no random initialisation is computed or stored) and
    give it the checkpoint's tensors as they are: on the CPU, in the checkpoint's dtype, memory-
    mapped where the checkpoint was read so. The caller moves it to its device and dtype."""
    with torch.device("meta"):
        model = make_module()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit {model.cfg}: {error}") from error
    return model.eval()


def read_through(path):
    """Read a file once, so that it is in the page cache: a memory-mapped checkpoint's tensors
    then reach the GPU from memory, not from disk, and this process keeps no copy."""
    buffer = bytearray(READ_BYTES)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
