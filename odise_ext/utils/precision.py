"""Losses in float32 whatever precision the model runs in.

Frozen SD/CLIP may run in bf16/fp16 (``MODEL.DIFFUSION.DTYPE``, ``MODEL.CLIP.DTYPE``) and training
may run under autocast (``SOLVER.AMP.ENABLED``); sums over many pixels, logs and exponentials of a
loss lose too much in 16 bits. :func:`float32_loss` wraps a loss function so that it runs with
autocast off and its 16-bit floating-point tensor arguments (also inside lists, tuples and dicts) cast
to float32; gradients flow back through the casts in the inputs' own dtypes.
"""
import functools
from contextlib import ExitStack

import torch

__all__ = ["float32_loss", "to_float32"]

_HALF = (torch.float16, torch.bfloat16)


def to_float32(obj):
    """``obj`` with every 16-bit float tensor (in nested lists / tuples / dicts) as float32
    (float64 stays float64)."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype in _HALF else obj
    if isinstance(obj, dict):
        return type(obj)((k, to_float32(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(to_float32(v) for v in obj)
    return obj


def float32_loss(fn):
    """Decorator: run ``fn`` in float32 (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args, kwargs = to_float32(args), to_float32(kwargs)
        with ExitStack() as stack:
            for device_type in ("cuda", "cpu"):
                if torch.is_autocast_enabled(device_type):
                    stack.enter_context(torch.autocast(device_type, enabled=False))
            return fn(*args, **kwargs)

    return wrapper
