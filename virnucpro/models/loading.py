"""Turning a checkpoint's tensors into a module."""

import torch


def materialize(make_module, state, path, device, dtype):
    """Build a module on the meta device (no random initialisation is computed or stored) and
    give it the checkpoint's tensors, then move it. `dtype=None` keeps the checkpoint's."""
    with torch.device("meta"):
        model = make_module()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit {model.cfg}: {error}") from error
    model = model.to(device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval()
