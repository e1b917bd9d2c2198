"""MLMA: Multi-Level Mutual Aggregation of image and phrase features.

Inputs: image features at L levels (1/32, 1/16, 1/8 from the UNet, coarsest first), one phrase
feature set per level (the EIPA adapters beside the UNet blocks of those resolutions, or the
static phrases when EIPA is off), and the VAE decoder's 1/4 feature.

Each layer:

1. bidirectional attention between all pixels of all levels and all phrases of all levels (one
   score map; softmax over phrases updates pixels, softmax over pixels updates phrases);
2. multi-scale deformable self-attention on the image features (+ FFN);
3. self-attention among the phrases (+ FFN).

Mask features: the 1/4 VAE-decoder feature plus the upsampled finest (1/8) MLMA level, through
a 3x3 conv, then a 1x1 projection to ``mask_dim``. With ``num_layers = 0`` (MLMA switched off)
only the projections and the mask-feature fusion remain.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, get_norm
from fvcore.nn import weight_init
from torch import nn

from ..mask2former.pixel_decoder.msdeformattn import MSDeformAttnTransformerEncoder, MSDeformAttnTransformerEncoderLayer
from ..mask2former.transformer_decoder.layers import FFNLayer, SelfAttentionLayer
from ..mask2former.transformer_decoder.position_encoding import PositionEmbeddingSine
from .attention import BidirectionalAttention

__all__ = ["MLMALayer", "MultiLevelMutualAggregation"]


class MLMALayer(nn.Module):
    """Bidirectional attention, deformable attention on pixels, self-attention on phrases."""

    def __init__(self, *, dim: int, num_heads: int, num_levels: int, num_points: int, dim_feedforward: int):
        super().__init__()
        self.bidirectional = BidirectionalAttention(dim, num_heads)
        self.deformable = MSDeformAttnTransformerEncoderLayer(
            dim, dim_feedforward, 0.0, num_levels, num_heads, num_points
        )
        self.phrase_self_attn = SelfAttentionLayer(dim, num_heads)
        self.phrase_ffn = FFNLayer(dim, dim_feedforward)

    def forward(self, pixels, pixel_pos, reference_points, shapes, phrases, phrase_pos, phrase_padding):
        """
        Args:
            pixels, pixel_pos: [B, S, C] all levels flattened; reference_points: [1, S, L, 2];
            shapes: L pairs (h, w); phrases, phrase_pos: [B, T, C]; phrase_padding: [B, T] bool.
        Returns:
            pixels [B, S, C], phrases [B, T, C].
        """
        pixels, phrases = self.bidirectional(pixels, pixel_pos, phrases, phrase_pos, phrase_padding)
        pixels = self.deformable(pixels, pixel_pos, reference_points, shapes)
        phrases = self.phrase_self_attn(phrases, query_pos=phrase_pos, key_padding_mask=phrase_padding)
        return pixels, self.phrase_ffn(phrases)


class MultiLevelMutualAggregation(nn.Module):
    """Projects, aggregates and fuses multi-level image and phrase features."""

    def __init__(
        self,
        *,
        image_channels: Sequence[int],
        phrase_channels: Sequence[int],
        mask_in_channels: int,
        dim: int,
        mask_dim: int,
        num_layers: int,
        num_heads: int,
        num_points: int,
        dim_feedforward: int,
    ):
        """
        Args:
            image_channels: channels of each image level (coarsest first).
            phrase_channels: channels of each level's phrase features (same order).
            mask_in_channels: channels of the 1/4 feature fused into the mask features.
            dim: common width; mask_dim: channels of the mask features.
            num_layers: MLMA layers (0: projections and fusion only).
            num_heads, num_points, dim_feedforward: attention heads, deformable points per head
                and level, FFN width.
        """
        super().__init__()
        if len(image_channels) != len(phrase_channels) or not image_channels:
            raise ValueError(
                f"MLMA needs one phrase set per image level, got {len(image_channels)} levels and "
                f"{len(phrase_channels)} phrase sets"
            )
        if dim % 2:
            raise ValueError(f"MODEL.PNG.HIDDEN_DIM must be even (sine positions), got {dim}")
        self.num_levels = len(image_channels)
        self.image_proj = nn.ModuleList(
            nn.Sequential(Conv2d(c, dim, kernel_size=1), get_norm("GN", dim)) for c in image_channels
        )
        self.phrase_proj = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.LayerNorm(dim)) for c in phrase_channels)
        self.pixel_level_embed = nn.Parameter(torch.randn(self.num_levels, dim) * 0.02)
        self.phrase_level_embed = nn.Parameter(torch.randn(self.num_levels, dim) * 0.02)
        self.pe_layer = PositionEmbeddingSine(dim // 2, normalize=True)
        self.layers = nn.ModuleList(
            MLMALayer(
                dim=dim,
                num_heads=num_heads,
                num_levels=self.num_levels,
                num_points=num_points,
                dim_feedforward=dim_feedforward,
            )
            for _ in range(num_layers)
        )
        self.mask_lateral = Conv2d(mask_in_channels, dim, kernel_size=1, norm=get_norm("GN", dim))
        self.mask_output = Conv2d(dim, dim, kernel_size=3, padding=1, norm=get_norm("GN", dim), activation=F.relu)
        self.mask_features = Conv2d(dim, mask_dim, kernel_size=1)
        for conv in (self.mask_lateral, self.mask_output, self.mask_features):
            weight_init.c2_xavier_fill(conv)

    def forward(
        self,
        images: Sequence[torch.Tensor],
        phrases: Sequence[torch.Tensor],
        phrase_padding: torch.Tensor,
        mask_in: torch.Tensor,
    ) -> Dict[str, object]:
        """
        Args:
            images: L maps [B, C_l, h_l, w_l], coarsest first.
            phrases: L tensors [B, P, D_l].
            phrase_padding: [B, P] bool, True at padding phrases.
            mask_in: [B, C, H/4, W/4].
        Returns:
            ``levels``: L maps [B, dim, h_l, w_l]; ``phrases``: L tensors [B, P, dim];
            ``mask_features``: [B, mask_dim, H/4, W/4].
        """
        if len(images) != self.num_levels or len(phrases) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} image levels and phrase sets, got {len(images)}, {len(phrases)}")
        srcs = [proj(x) for proj, x in zip(self.image_proj, images)]
        shapes = [tuple(s.shape[-2:]) for s in srcs]
        pixels = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pixel_pos = torch.cat(
            [
                self.pe_layer(s).flatten(2).transpose(1, 2) + self.pixel_level_embed[lvl]
                for lvl, s in enumerate(srcs)
            ],
            1,
        )
        num = phrase_padding.shape[1]
        tokens = torch.cat([proj(p) for proj, p in zip(self.phrase_proj, phrases)], 1)  # [B, L*P, dim]
        token_pos = self.phrase_level_embed.repeat_interleave(num, 0)[None].expand_as(tokens)
        token_padding = phrase_padding.repeat(1, self.num_levels)
        reference_points = MSDeformAttnTransformerEncoder.reference_points(shapes, self.num_levels, pixels.device)
        for layer in self.layers:
            pixels, tokens = layer(pixels, pixel_pos, reference_points, shapes, tokens, token_pos, token_padding)

        levels: List[torch.Tensor] = []
        for (h, w), chunk in zip(shapes, pixels.split([h * w for h, w in shapes], 1)):
            levels.append(chunk.transpose(1, 2).reshape(chunk.shape[0], -1, h, w))
        finest = F.interpolate(levels[-1], size=mask_in.shape[-2:], mode="bilinear", align_corners=False)
        fused = self.mask_output(self.mask_lateral(mask_in) + finest)
        return {
            "levels": levels,
            "phrases": list(tokens.split(num, 1)),
            "mask_features": self.mask_features(fused),
        }
