# Adapted from fudan-zvg/meta-prompts@a3e8583098c64c8854a85b260d80cb8335402469:segmentation/models/model.py
"""Meta-Prompts feature re-arrangement.

Each multi-scale feature map is upsampled (bilinear, x``upsample``), projected to the prompt
width D (conv3x3 - GroupNorm - ReLU) and compared with every prompt by a plain dot product
(no softmax): ``einsum('bchw,bnc->bnhw')``. The output has one channel per prompt, so the task
head sees "how much each prompt is present" at every pixel.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PromptRearrangement"]


class PromptRearrangement(nn.Module):
    """Per-level projection + prompt dot product.

    Args:
        in_channels: channels of each input level.
        dim: prompt width D.
        upsample: integer upsampling factor applied first (1 = none).
        gn_groups: GroupNorm groups of the projection (must divide D).
    """

    def __init__(self, in_channels: Sequence[int], dim: int, upsample: int = 1, gn_groups: int = 16):
        super().__init__()
        if upsample < 1:
            raise ValueError(f"MODEL.META_PROMPTS.REARRANGE.UPSAMPLE must be >= 1, got {upsample}")
        if dim % gn_groups:
            raise ValueError(f"REARRANGE.GN_GROUPS={gn_groups} does not divide the prompt width {dim}")
        self.upsample = int(upsample)
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 3, padding=1), nn.GroupNorm(gn_groups, dim), nn.ReLU())
            for c in in_channels
        )

    def forward(self, features: List[torch.Tensor], prompts: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            features: one [B, C_i, h_i, w_i] map per level.
            prompts: [B, N, D] the prompts (the UNet's cross-attention context).
        Returns:
            one [B, N, h_i * upsample, w_i * upsample] map per level.
        """
        if len(features) != len(self.projections):
            raise ValueError(f"expected {len(self.projections)} feature levels, got {len(features)}")
        out = []
        for x, proj in zip(features, self.projections):
            if self.upsample > 1:
                x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
            out.append(torch.einsum("bchw,bnc->bnhw", proj(x), prompts.to(x.dtype)))
        return out
