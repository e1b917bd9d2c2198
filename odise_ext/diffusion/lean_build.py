"""Build big frozen networks without a second copy of their weights in memory.

- :func:`cast_while_building`: a 16-bit network whose layers are initialised in float32 and
  cast one by one (no float32 copy of the whole network);
- :func:`parameters_on_meta`: a network whose parameters are placeholders on the ``meta`` device
  (buffers stay real, e.g. position ids and causal masks that files do not hold), to be filled by
  :func:`assign_state_dict` with the tensors of a (memory-mapped) file, converted to the
  network's dtype on the way, so the only copy is the one the network keeps;
"""
from contextlib import contextmanager
from typing import Dict, Optional

import torch
from torch import nn

__all__ = ["cast_while_building", "parameters_on_meta", "assign_state_dict"]


@contextmanager
def cast_while_building(dtype: Optional[torch.dtype]):
    """Cast every sub-module to ``dtype`` as soon as it is attached to its parent.

    A layer initialises its parameters in float32 inside its own constructor, before it is
    attached, so the random values (and the RNG stream) are those of a float32 build and each
    weight is exactly its float32 value rounded; only one layer exists in float32 at a time.
    For networks whose constructors do not re-initialise children afterwards (diffusers' UNet and
    VAE; not open_clip or transformers, which do). ``None`` / float32: no effect.
    """
    if dtype is None or dtype == torch.float32:
        yield
        return
    set_attr, add_module = nn.Module.__setattr__, nn.Module.add_module

    def cast_set_attr(module, name, value):
        set_attr(module, name, value)
        if isinstance(value, nn.Module):
            value.to(dtype)

    def cast_add_module(module, name, value):
        add_module(module, name, value)
        if isinstance(value, nn.Module):
            value.to(dtype)

    nn.Module.__setattr__, nn.Module.add_module = cast_set_attr, cast_add_module
    try:
        yield
    finally:
        nn.Module.__setattr__, nn.Module.add_module = set_attr, add_module


@contextmanager
def parameters_on_meta():
    """Every ``nn.Parameter`` registered inside the block lives on the meta device (no memory,
    and initialisers become no-ops); buffers are untouched."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def assign_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], dtype: Optional[torch.dtype] = None):
    """``model.load_state_dict(state, strict=True, assign=True)`` with every floating-point tensor
    converted to ``dtype`` (default: the dtype of the model's own entry); tensors that already
    match are taken as they are (memory-mapped ones stay mapped)."""
    expected = model.state_dict(keep_vars=True)
    ready = {}
    for key, value in state.items():
        target = expected[key]
        want = dtype if dtype is not None and target.is_floating_point() else target.dtype
        ready[key] = value.to(dtype=want) if value.dtype != want else value
    # assign=True keeps requires_grad of the placeholders (frozen callers clear it afterwards).
    model.load_state_dict(ready, strict=True, assign=True)
    left = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ValueError(f"{len(left)} parameters were not in the state dict (e.g. {left[:3]}).")
    return model

