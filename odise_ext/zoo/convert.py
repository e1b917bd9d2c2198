"""Released checkpoint -> odise-ext checkpoint, with the project's converters.

:func:`release_converter` is the one place that knows which converter handles which release
format (ODISE: :mod:`odise_ext.odise.release`; VPD / Meta-Prompts:
:mod:`odise_ext.checkpoint`, their formats registered by `vpd.release` and `metaprompts.release`). Files are read with the safe loaders only
(:mod:`odise_ext.utils.safe_load`): a checkpoint that needs code to unpickle is refused.
"""
from typing import Callable, Dict

import torch

from ..utils.atomic_io import atomic_write
from ..utils.safe_load import safe_torch_load

__all__ = ["convert_release_file", "release_converter"]


def _convert_odise(src: str, check_release_shapes: bool) -> Dict:
    from ..odise.release import convert_odise_state_dict

    ckpt = safe_torch_load(src)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{src}: expected an ODISE checkpoint ({{'model': state_dict}} or a state_dict)")
    converted, _frozen, _other = convert_odise_state_dict(state)
    return {"model": converted}


def _vpd_converter(fmt: str) -> Callable[[str, bool], Dict]:
    def convert(src: str, check_release_shapes: bool) -> Dict:
        from ..checkpoint import convert_release_to_ours, load_release_checkpoint

        state, _rest = load_release_checkpoint(src)
        converted, dropped = convert_release_to_ours(state, fmt, check_shapes=check_release_shapes)
        return {"model": converted, "release_format": fmt, "release_dropped": dropped}

    return convert


def release_converter(fmt: str) -> Callable[[str, bool], Dict]:
    """``convert(src_path, check_release_shapes) -> checkpoint dict`` for release format ``fmt``."""
    if fmt == "odise":
        return _convert_odise
    from ..checkpoint import RELEASE_FORMATS

    if fmt not in RELEASE_FORMATS:
        raise ValueError(f"unknown release format {fmt!r}; known: odise, {', '.join(sorted(RELEASE_FORMATS))}")
    return _vpd_converter(fmt)


def convert_release_file(src: str, dst: str, fmt: str, check_release_shapes: bool = True, source: str = "") -> str:
    """Convert the released file ``src`` (format ``fmt``) and write our checkpoint to ``dst`` atomically."""
    out = release_converter(fmt)(src, check_release_shapes)
    out["__author__"] = f"converted by odise_ext.zoo from {source or src} ({fmt})"
    atomic_write(dst, lambda f: torch.save(out, f))
    return dst
