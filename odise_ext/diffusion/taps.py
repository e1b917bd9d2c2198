"""Feature taps of the diffusion feature extractor: where a feature is read and at which stride.

A tap is ``"<component>.<module path>:<input|output>"`` (component ``unet`` or ``vae``), e.g.
``"unet.up_blocks.0.resnets.2:input"``; ``MODEL.DIFFUSION.TAPS`` lists them and
``MODEL.DIFFUSION.TAP_STRIDES`` gives each one's output stride.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ["Tap", "collect_taps", "first_tensor", "parse_taps", "tap_channels"]


@dataclass(frozen=True)
class Tap:
    """One feature tap.

    Attributes:
        spec: the config string, e.g. ``"unet.up_blocks.0.resnets.2:input"``.
        component: "unet" or "vae".
        path: module path inside the component, e.g. ``"up_blocks.0.resnets.2"``.
        where: "input" (first positional / ``hidden_states`` argument) or "output".
        stride: output stride of the backbone feature this tap feeds.
    """

    spec: str
    component: str
    path: str
    where: str
    stride: int

    @property
    def stage(self) -> str:
        if self.component == "unet":
            return "unet"
        encoder = self.path.split(".")[0] in ("encoder", "quant_conv")
        return "vae_encoder" if encoder else "vae_decoder"


def parse_taps(specs: Sequence[str], strides: Sequence[int]) -> List[Tap]:
    """Parse ``MODEL.DIFFUSION.TAPS`` / ``TAP_STRIDES``."""
    if len(specs) != len(strides):
        raise ValueError(
            f"MODEL.DIFFUSION.TAPS has {len(specs)} entries but TAP_STRIDES has {len(strides)}."
        )
    taps = []
    for spec, stride in zip(specs, strides):
        name, sep, where = spec.rpartition(":")
        component, _, path = name.partition(".")
        valid = sep and where in ("input", "output") and component in ("unet", "vae") and path
        if not valid:
            raise ValueError(
                f"Bad tap {spec!r}: expected '<unet|vae>.<module path>:<input|output>', "
                f"e.g. 'unet.up_blocks.0.resnets.2:input'."
            )
        if component == "vae" and path.split(".")[0] not in (
            "encoder", "quant_conv", "decoder", "post_quant_conv"
        ):
            raise ValueError(f"Bad tap {spec!r}: VAE taps must be inside encoder/ or decoder/.")
        if stride <= 0:
            raise ValueError(f"Bad stride {stride} for tap {spec!r}.")
        taps.append(Tap(spec, component, path, where, int(stride)))
    if len({t.spec for t in taps}) != len(taps):
        raise ValueError(f"Duplicate taps in {list(specs)}.")
    return taps


def tap_channels(module: nn.Module, tap: Tap) -> int:
    """Channels of a tap, from the diffusers modules' ``in_channels`` / ``out_channels``."""
    attr = "in_channels" if tap.where == "input" else "out_channels"
    value = getattr(module, attr, None)
    if isinstance(value, int):
        return value
    if tap.where == "output":
        # A block's output comes from its last layer with a channel count (resnet/upsampler).
        for sub in reversed(list(module.modules())):
            if isinstance(getattr(sub, "out_channels", None), int):
                return sub.out_channels
    raise ValueError(
        f"Cannot tell the channels of tap {tap.spec!r} ({type(module).__name__} has no {attr}); "
        f"tap the input of a module with `in_channels` (a resnet, a conv) instead."
    )


# ---- hooks that read taps ---------------------------------------------------------------------
class _StopForward(Exception):
    """Raised from a tap hook once a network has produced everything that is needed."""


def first_tensor(args, kwargs) -> torch.Tensor:
    """A module call's image-feature argument: the first positional, else ``hidden_states``."""
    if args:
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    return next(v for v in kwargs.values() if torch.is_tensor(v))


def _save_input(save, index, module, args, kwargs):
    save(index, first_tensor(args, kwargs))


def _save_output(save, index, module, args, output):
    save(index, output)


@contextmanager
def collect_taps(taps: Sequence[Tuple[int, str, nn.Module]], store: Dict[int, torch.Tensor], stop_when_done: bool):
    """Install hooks that write float32 features into ``store`` while active.

    Args:
        taps: (index in ``store``, "input" or "output", module) per tap of one network.
        store: {index: [N, C, h, w]} filled by the hooks.
        stop_when_done: the hook that completes ``taps`` aborts the forward pass (the exception
            is swallowed here), so later layers never run.
    """
    wanted = [i for i, _, _ in taps]

    def save(index, x):
        if not torch.is_tensor(x):
            x = x[0]  # tuples / diffusers outputs: the hidden states come first
        store[index] = x.float()
        if stop_when_done and all(j in store for j in wanted):
            raise _StopForward

    handles = []
    for i, where, module in taps:
        if where == "input":
            handles.append(module.register_forward_pre_hook(partial(_save_input, save, i), with_kwargs=True))
        else:
            handles.append(module.register_forward_hook(partial(_save_output, save, i)))
    try:
        yield
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
