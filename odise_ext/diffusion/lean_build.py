"""Build big frozen networks without a second copy of their weights in memory.

- :func:`cast_while_building`: a 16-bit network whose layers are initialised in float32 and
  cast one by one (no float32 copy of the whole network);
- :func:`parameters_on_meta`: a network whose parameters are placeholders on the ``meta`` device
  (buffers stay real, e.g. position ids and causal masks that files do not hold), to be filled by
  :func:`assign_state_dict` with the tensors of a (memory-mapped) file, converted to the
  network's dtype on the way, so the only copy is the one the network keeps;
"""
import threading
from contextlib import contextmanager
from typing import Callable, Dict, Optional

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

__all__ = ["cast_while_building", "parameters_on_meta", "assign_state_dict"]


@contextmanager
def _registration_hook(register: Callable, hook: Callable):
    """torch's public registration hook ``register`` (module / parameter) for the block, acting
    on this thread's registrations only (no ``nn.Module`` method is replaced; another thread
    building a module meanwhile is untouched), removed on exit."""
    thread = threading.get_ident()

    def scoped(module, name, value):
        return hook(value) if threading.get_ident() == thread and value is not None else None

    handle = register(scoped)
    try:
        yield
    finally:
        handle.remove()


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
    with _registration_hook(register_module_module_registration_hook, lambda child: child.to(dtype)):
        yield


def _to_meta(param: nn.Parameter) -> Optional[nn.Parameter]:
    if param.device.type == "meta":
        return None
    return nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)


@contextmanager
def parameters_on_meta():
    """Every ``nn.Parameter`` registered inside the block (on this thread) lives on the meta
    device (no memory: each is dropped as it is registered); buffers are untouched."""
    with _registration_hook(register_module_parameter_registration_hook, _to_meta):
        yield


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

