# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/transformer_decoder/position_encoding.py
"""Sine positional encoding of a 2-D feature map (DETR, normalised as in Mask2Former)."""

import math
from typing import Optional

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine"]


class PositionEmbeddingSine(nn.Module):
    """Fixed sin/cos encoding of (y, x) positions.

    For channel pair i (0 <= i < num_pos_feats / 2) and coordinate c in {y, x}:
    ``enc[2i] = sin(c / T^(2i / F))``, ``enc[2i+1] = cos(c / T^(2i / F))`` with F =
    ``num_pos_feats`` and T = ``temperature``; y channels come first. With ``normalize``,
    ``c = k / (n + 1e-6) * scale`` for the k-th (1-based) valid pixel of n along that axis --
    Mask2Former's normalisation (its pixel decoder and transformer decoder, hence every
    Mask2Former/ODISE checkpoint, were trained with it). Deformable DETR's variant subtracts 0.5
    from k; no module here uses it.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000,
        normalize: bool = False,
        scale: Optional[float] = None,
    ):
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: [B, C, H, W] (only its shape, device and dtype are used).
            mask: optional [B, H, W] bool, True at padded pixels (they do not count).
        Returns:
            [B, 2 * num_pos_feats, H, W].
        """
        if mask is None:
            mask = torch.zeros((x.shape[0], x.shape[2], x.shape[3]), device=x.device, dtype=torch.bool)
        not_mask = (~mask).to(torch.float32)
        y_embed = not_mask.cumsum(1)
        x_embed = not_mask.cumsum(2)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale

        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).to(x.dtype)
