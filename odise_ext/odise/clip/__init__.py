"""Frozen open_clip CLIP with ODISE's preprocessing."""
from .open_clip_wrapper import (
    CLIP_MEAN,
    CLIP_STD,
    ClipWrapper,
    build_clip,
    build_open_clip_model,
    load_clip_weights,
)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipWrapper",
    "build_clip",
    "build_open_clip_model",
    "load_clip_weights",
]
