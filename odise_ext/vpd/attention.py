"""Cross-attention maps as feature channels (VPD).

The recorder gives, per cross-attention layer, the attention of every latent pixel over the L
prompt tokens (softmax over tokens, mean over heads). VPD averages the maps of all layers at the
same resolution and concatenates the L resulting channels to the feature map of that stride.
"""
from collections import defaultdict
from typing import Dict, Iterable, List

import torch
import torch.nn.functional as F

from ..diffusion.cross_attention import AttentionMap

__all__ = ["average_attention_by_stride", "attention_channels"]


def average_attention_by_stride(maps: Iterable[AttentionMap], latent_stride: int) -> Dict[int, torch.Tensor]:
    """Average the maps of equal resolution.

    Args:
        maps: recorded maps, each ``probs`` [N, h, w, L].
        latent_stride: image pixels per latent pixel (8 for SD's VAE).
    Returns:
        ``{image stride: [N, L, h, w]}``, the mean over the layers of that stride (each map still
        sums to 1 over L).
    """
    groups: Dict[int, List[torch.Tensor]] = defaultdict(list)
    for m in maps:
        groups[m.latent_stride * latent_stride].append(m.probs)
    out = {}
    for stride, probs in groups.items():
        shapes = {tuple(p.shape) for p in probs}
        if len(shapes) != 1:
            raise RuntimeError(f"attention maps at stride {stride} differ in shape: {sorted(shapes)}")
        out[stride] = torch.stack(probs).mean(dim=0).permute(0, 3, 1, 2)
    return out


def attention_channels(averaged: Dict[int, torch.Tensor], stride: int, size) -> torch.Tensor:
    """The averaged maps of ``stride`` at feature size ``size`` = (h, w): [N, L, h, w].

    The maps live on the UNet's grid for that stride; a feature tapped at the same stride has the
    same grid, so resizing (bilinear) only happens when a tap was resized to a nominal stride.
    """
    if stride not in averaged:
        raise ValueError(
            f"no cross-attention layer runs at image stride {stride} (available: {sorted(averaged)}); "
            "check MODEL.VPD.ATTENTION_STRIDES"
        )
    maps = averaged[stride]
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)
    return maps
