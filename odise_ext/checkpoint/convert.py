"""Released checkpoints <-> odise-ext state dicts, for any registered format
(:mod:`odise_ext.checkpoint.formats`; the formats and key lists belong to the families).

The SD parts are stored in ldm (CompVis) layout: the UNet (tuned by VPD / Meta-Prompts, so the
checkpoint's UNet replaces the SD file's) and the VAE encoder (frozen; loaded into our frozen VAE).
Their names are mapped to diffusers' by diffusers' own single-file converter, run once on
placeholder tensors (one value per key), so every released key has exactly one of ours and back.
Everything else is renamed by the format's rules. Tensors are read with
``torch.load(weights_only=True)`` only: a checkpoint that needs arbitrary unpickling is refused.
"""
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..engine.checkpoint import state_dict_problems
from ..utils.safe_load import safe_torch_load
from .formats import RELEASE_FORMATS, release_format, release_key_shapes

__all__ = [
    "convert_ours_to_release",
    "convert_release_to_ours",
    "detect_release_format",
    "load_release_checkpoint",
    "name_map",
    "rename_key",
    "check_against_model",
]


# ---- reading ----------------------------------------------------------------------------------
def load_release_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a released checkpoint with ``weights_only=True`` (``odise_ext.utils.safe_load``).

    Returns:
        (state dict without a ``module.`` prefix, the other top-level entries).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    obj = safe_torch_load(path)  # weights_only=True: a pickle payload is refused, never run
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, expected a dict checkpoint")
    for container in ("model", "state_dict"):
        if isinstance(obj.get(container), dict):
            state = obj[container]
            rest = {k: v for k, v in obj.items() if k != container}
            break
    else:
        state, rest = obj, {}
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError(f"{path}: the state dict must map names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state), rest


def detect_release_format(keys: Sequence[str]) -> str:
    """The released format whose key list equals ``keys`` best (ties and misses are errors).

    ``keys`` may be the state dict itself: formats with the same keys (Meta-Prompts ADE20K /
    Cityscapes, which differ in the number of classes) are then told apart by the shapes of the
    keys whose released shapes differ between them."""
    state = keys if isinstance(keys, dict) else None
    keys = set(keys)
    scores = {}
    for name in RELEASE_FORMATS:
        expected = set(release_key_shapes(name))
        scores[name] = len(keys & expected) / max(len(keys | expected), 1)
    best = max(scores, key=scores.get)
    if scores[best] < 0.9:
        raise ValueError(
            f"the checkpoint matches no released format (key overlap {scores}); "
            "pass the format explicitly"
        )
    tied = [name for name in scores if scores[name] == scores[best]]
    if len(tied) > 1:
        shapes = {name: release_key_shapes(name) for name in tied}
        differing = [k for k in shapes[tied[0]] if len({shapes[n].get(k) for n in tied}) > 1]
        fits = [n for n in tied if state is not None
                and all(k in state and tuple(state[k].shape) == shapes[n][k] for k in differing)]
        if len(fits) != 1:
            raise ValueError(
                f"the checkpoint's keys fit the formats {tied} equally and the shapes of {differing[:4]} "
                "tell none of them apart; pass the format explicitly"
            )
        best = fits[0]
    return best


# ---- ldm <-> diffusers names --------------------------------------------------------------------
def _placeholders(keys: Sequence[str], shapes: Dict[str, Tuple[int, ...]], prefix: str) -> Dict[str, torch.Tensor]:
    # One distinct value per key, with the key's number of dims (the converter reshapes some).
    return {prefix + k: torch.full((1,) * len(shapes[k]), float(i), dtype=torch.float64) for i, k in enumerate(keys)}


def _unet_config(keys: Sequence[str]) -> dict:
    blocks = {int(k.split(".")[1]) for k in keys if k.startswith("input_blocks.")}
    downsamplers = {k.split(".")[1] for k in keys if re.match(r"input_blocks\.\d+\.0\.op\.", k)}
    levels = len(downsamplers) + 1
    return {"layers_per_block": (len(blocks) - 1 - len(downsamplers)) // levels}


def _vae_config(keys: Sequence[str]) -> dict:
    levels = len({k.split(".")[2] for k in keys if k.startswith("encoder.down.")})
    return {"down_block_types": ["DownEncoderBlock2D"] * levels, "up_block_types": ["UpDecoderBlock2D"] * levels,
            "layers_per_block": 2}


def _ldm_names(keys: List[str], shapes: Dict[str, Tuple[int, ...]], component: str) -> Dict[str, Tuple[str, int]]:
    """ldm key -> (diffusers key, diffusers ndim) for the given keys of one component."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    if not keys:
        return {}
    if component == "unet":
        converted = convert_ldm_unet_checkpoint(_placeholders(keys, shapes, "model.diffusion_model."), _unet_config(keys))
    else:
        converted = convert_ldm_vae_checkpoint(_placeholders(keys, shapes, "first_stage_model."), _vae_config(keys))
    out = {}
    for new, value in converted.items():
        key = keys[int(value.flatten()[0])]
        if key in out:
            raise RuntimeError(f"ldm key {key} maps to two diffusers keys ({out[key][0]}, {new})")
        out[key] = (new, value.dim())
    lost = [k for k in keys if k not in out]
    if lost:
        raise ValueError(f"{component} keys without a diffusers counterpart: {lost[:10]}")
    return out


def rename_key(key: str, rules) -> Optional[str]:
    """``key`` renamed by the first matching (regex or compiled pattern, replacement) rule, None
    if none matches."""
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    return None


def name_map(fmt: str) -> "OrderedDict[str, Tuple[Optional[str], Optional[int]]]":
    """Released key -> (our key or None if dropped / a duplicate, our ndim or None = same)."""
    f = release_format(fmt)
    shapes = release_key_shapes(fmt)
    unet = [k[len(f.unet_prefix):] for k in shapes if k.startswith(f.unet_prefix)]
    vae = [k[len(f.vae_prefix):] for k in shapes if k.startswith(f.vae_prefix)]
    sub_shapes = {k[len(f.unet_prefix):]: s for k, s in shapes.items() if k.startswith(f.unet_prefix)}
    sub_shapes.update({k[len(f.vae_prefix):]: s for k, s in shapes.items() if k.startswith(f.vae_prefix)})
    unet_map = _ldm_names(unet, sub_shapes, "unet")
    vae_map = _ldm_names(vae, sub_shapes, "vae")
    out = OrderedDict()
    for key in shapes:
        if key in f.duplicates or key.startswith(f.dropped):
            out[key] = (None, None)
        elif key.startswith(f.unet_prefix):
            new, ndim = unet_map[key[len(f.unet_prefix):]]
            out[key] = (f"{f.ours_prefix}unet.module.{new}", ndim)
        elif key.startswith(f.vae_prefix):
            new, ndim = vae_map[key[len(f.vae_prefix):]]
            out[key] = (f"{f.ours_prefix}vae.module.{new}", ndim)
        else:
            new = rename_key(key, f.rules)
            if new is None:
                raise RuntimeError(f"format {fmt}: no rule for released key {key}")
            out[key] = (new, None)
    ours = [v[0] for v in out.values() if v[0] is not None]
    if len(set(ours)) != len(ours):
        raise RuntimeError(f"format {fmt}: two released keys map to the same key of ours")
    return out


# ---- conversion -------------------------------------------------------------------------------
def convert_release_to_ours(state: Dict[str, torch.Tensor], fmt: str, check_shapes: bool = True):
    """Released state dict -> ours.

    Args:
        state: the released state dict (see :func:`load_release_checkpoint`).
        fmt: its format (:func:`detect_release_format`).
        check_shapes: compare every shape with the released model's (off for scaled-down test
            models; the shapes are then checked against our model by :func:`check_against_model`).
    Returns:
        (our state dict, {dropped released key: tensor}).
    """
    f = release_format(fmt)
    shapes = release_key_shapes(fmt)
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    if missing or unexpected:
        raise ValueError(
            f"not a released {fmt} checkpoint: missing keys {missing[:20]}{' ...' if len(missing) > 20 else ''}, "
            f"unexpected keys {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}"
        )
    if check_shapes:
        bad = [(k, tuple(state[k].shape), s) for k, s in shapes.items() if tuple(state[k].shape) != s]
        if bad:
            raise ValueError(f"{fmt}: shapes differ from the released model (key, file, release): {bad[:10]}")
    for dup, orig in f.duplicates.items():
        same = state[dup].is_meta or torch.equal(state[dup], state[orig])  # meta: shapes-only check
        if state[dup].shape != state[orig].shape or not same:
            raise ValueError(f"{fmt}: {dup} must equal {orig} (one tensor stored under both names)")
    out, dropped = OrderedDict(), OrderedDict()
    for key, (new, ndim) in name_map(fmt).items():
        value = state[key]
        if new is None:
            if key not in f.duplicates:
                dropped[key] = value
            continue
        while ndim is not None and value.dim() > ndim:  # ldm 1x1 conv attention -> linear
            value = value[..., 0]
        out[new] = value
    return out, dropped


def convert_ours_to_release(state: Dict[str, torch.Tensor], fmt: str, dropped: Optional[Dict] = None):
    """Our state dict (as produced by :func:`convert_release_to_ours`, or a model trained with the
    format's config) -> the released layout. ``dropped``: the released-only tensors to restore."""
    f = release_format(fmt)
    shapes = release_key_shapes(fmt)
    out = OrderedDict()
    mapping = name_map(fmt)
    missing = [new for new, _ in mapping.values() if new is not None and new not in state]
    if missing:
        raise ValueError(f"{fmt}: our state dict lacks {missing[:20]}")
    for key, (new, ndim) in mapping.items():
        if new is None:
            continue
        value = state[new]
        release_ndim = len(shapes[key])
        while value.dim() < release_ndim:
            value = value[..., None]
        out[key] = value
    for dup, orig in f.duplicates.items():
        out[dup] = out[orig].clone()
    for key in shapes:
        if key not in out:
            if not dropped or key not in dropped:
                raise ValueError(f"{fmt}: released key {key} has no counterpart of ours; pass it in `dropped`")
            out[key] = dropped[key]
    return OrderedDict((k, out[k]) for k in shapes)


def check_against_model(state: Dict[str, torch.Tensor], model: torch.nn.Module, fmt: str) -> List[str]:
    """Problems (missing / unexpected / mis-shaped keys) of a converted state dict for ``model``.

    Expected: every tensor of ``model.state_dict()`` (our trainable and tuned parts) except the
    format's unused prefixes and ``_extra_state`` records, plus the frozen VAE-encoder weights the
    release holds.
    """
    f = release_format(fmt)
    ours = {k: v for k, v in model.state_dict().items() if torch.is_tensor(v) and not k.endswith("_extra_state")}
    vae_prefix = f.ours_prefix + "vae.module."
    vae = dict(model.get_submodule(f.ours_prefix + "vae.module").state_dict(prefix=vae_prefix).items())
    ours.update({k: v for k, v in vae.items() if k in state})
    return state_dict_problems(state, ours, optional=f.unused)
