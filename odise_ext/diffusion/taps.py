"""Feature taps of the diffusion feature extractor: where a feature is read and at which stride.

A tap is ``"<component>.<module path>:<input|output>"`` (component ``unet`` or ``vae``), e.g.
``"unet.up_blocks.0.resnets.2:input"``; ``MODEL.DIFFUSION.TAPS`` lists them and
``MODEL.DIFFUSION.TAP_STRIDES`` gives each one's output stride.
"""
from dataclasses import dataclass
from typing import List, Sequence

from torch import nn

__all__ = ["Tap", "parse_taps", "tap_channels"]


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
