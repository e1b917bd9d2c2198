# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/pixel_decoder/msdeformattn.py
"""Mask2Former's pixel decoder: a multi-scale deformable-attention encoder over the coarse
backbone levels, then an FPN path down to ``common_stride`` for the per-pixel mask features.

Module and parameter names follow Mask2Former so that its (and ODISE's) checkpoints load.
"""

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry
from fvcore.nn import weight_init
from torch import nn

from ..transformer_decoder.position_encoding import PositionEmbeddingSine
from .ms_deform_attn import MSDeformAttn

__all__ = [
    "PIXEL_DECODER_REGISTRY",
    "build_pixel_decoder",
    "MSDeformAttnTransformerEncoderLayer",
    "MSDeformAttnTransformerEncoder",
    "MSDeformAttnPixelDecoder",
]

PIXEL_DECODER_REGISTRY = Registry("PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = """
Pixel decoders of mask-classification heads. A registered class is built as
``cls(cfg, input_shape)`` and its ``forward(features)`` returns
``(mask_features [B, MASK_DIM, H/common_stride, W/common_stride],
multi_scale_features: list of [B, CONVS_DIM, H_l, W_l], coarsest first)``.
"""


def build_pixel_decoder(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build ``cfg.MODEL.MASK_FORMER.PIXEL_DECODER.NAME`` from the backbone's output shapes."""
    name = cfg.MODEL.MASK_FORMER.PIXEL_DECODER.NAME
    return PIXEL_DECODER_REGISTRY.get(name)(cfg, input_shape)


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention over all levels, then FFN."""

    def __init__(
        self,
        d_model: int = 256,
        d_ffn: int = 1024,
        dropout: float = 0.1,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
        impl: str = "auto",
    ):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, impl=impl)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, spatial_shapes, padding_mask=None):
        """
        Args:
            src, pos: [B, S, C] flattened levels and their positional + level embeddings.
            reference_points: [B or 1, S, L, 2].
            spatial_shapes: L pairs (H_l, W_l).
            padding_mask: optional [B, S] bool.
        Returns:
            [B, S, C].
        """
        src2 = self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(src2))


class MSDeformAttnTransformerEncoder(nn.Module):
    """Stack of deformable encoder layers over flattened multi-scale features.

    Attribute names (``level_embed``, ``encoder.layers``) match Mask2Former's
    ``MSDeformAttnTransformerEncoderOnly``.
    """

    def __init__(
        self,
        *,
        d_model,
        nhead,
        num_encoder_layers,
        dim_feedforward,
        dropout,
        num_feature_levels,
        enc_n_points,
        impl="auto",
    ):
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(
            [
                MSDeformAttnTransformerEncoderLayer(
                    d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points, impl=impl
                )
                for _ in range(num_encoder_layers)
            ]
        )
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def reference_points(spatial_shapes: Sequence[Tuple[int, int]], num_levels: int, device) -> torch.Tensor:
        """Pixel centres of every level, normalised per level (no padding inside the batch).

        Returns:
            [1, S, L, 2] (x, y); the same normalised point is used on every level.
        """
        points = []
        for h, w in spatial_shapes:
            ref_y, ref_x = torch.meshgrid(
                (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h,
                (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w,
                indexing="ij",
            )
            points.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
        points = torch.cat(points, 0)
        return points[None, :, None, :].expand(1, -1, num_levels, 2)

    def forward(
        self, srcs: List[torch.Tensor], pos_embeds: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[Tuple[int, int]]]:
        """
        Args:
            srcs, pos_embeds: per level [B, C, H_l, W_l].
        Returns:
            memory [B, S, C] (levels flattened row-major, in input order) and the L (H_l, W_l).
        """
        shapes = [tuple(src.shape[-2:]) for src in srcs]
        src_flatten = torch.cat([src.flatten(2).transpose(1, 2) for src in srcs], 1)
        pos_flatten = torch.cat(
            [
                pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                for lvl, pos in enumerate(pos_embeds)
            ],
            1,
        )
        reference_points = self.reference_points(shapes, len(srcs), src_flatten.device).to(src_flatten.dtype)
        output = src_flatten
        for layer in self.encoder.layers:
            output = layer(output, pos_flatten, reference_points, shapes)
        return output, shapes


@PIXEL_DECODER_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable-attention encoder on ``transformer_in_features`` + FPN to ``common_stride``."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: Dict[str, ShapeSpec],
        transformer_in_features: List[str],
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        transformer_n_points: int,
        conv_dim: int,
        mask_dim: int,
        norm: str,
        common_stride: int,
        deform_attn_impl: str = "auto",
    ):
        """
        Args:
            input_shape: backbone features used (the transformer levels and every finer level
                down to ``common_stride``).
            transformer_in_features: names of the levels refined by the deformable encoder.
            conv_dim: width of the encoder and FPN; mask_dim: width of the mask features.
            norm: detectron2 norm name of the 1x1 / 3x3 FPN convs ("GN", "" for none).
            common_stride: stride of the mask features.
        """
        super().__init__()
        missing = [f for f in transformer_in_features if f not in input_shape]
        if missing:
            raise ValueError(
                f"transformer_in_features {missing} are not among the input features {sorted(input_shape)}"
            )
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]  # fine to coarse
        self.feature_channels = [v.channels for _, v in shapes]
        # Coarse to fine: the first level is the one the transformer decoder uses first.
        tr_shapes = sorted(
            ((k, input_shape[k]) for k in transformer_in_features), key=lambda kv: -kv[1].stride
        )
        self.transformer_in_features = [k for k, _ in tr_shapes]
        self.transformer_feature_strides = [v.stride for _, v in tr_shapes]
        self.common_stride = common_stride

        # GroupNorm(32) regardless of ``norm``: the input projections of Mask2Former checkpoints
        # always carry it.
        self.input_proj = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(v.channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
                for _, v in tr_shapes
            ]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

        self.transformer = MSDeformAttnTransformerEncoder(
            d_model=conv_dim,
            nhead=transformer_nheads,
            num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            num_feature_levels=len(tr_shapes),
            enc_n_points=transformer_n_points,
            impl=deform_attn_impl,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1)
        weight_init.c2_xavier_fill(self.mask_features)

        min_stride = min(self.transformer_feature_strides)
        if common_stride > min_stride:
            raise ValueError(
                f"common_stride {common_stride} is coarser than the finest transformer level ({min_stride})"
            )
        self.num_fpn_levels = round(math.log2(min_stride / common_stride))
        fpn_features = [(k, v) for k, v in shapes if common_stride <= v.stride < min_stride]
        if len(fpn_features) != self.num_fpn_levels:
            raise ValueError(
                f"reaching common_stride {common_stride} from stride {min_stride} needs "
                f"{self.num_fpn_levels} finer "
                f"input levels at strides {[min_stride >> (i + 1) for i in range(self.num_fpn_levels)]}; "
                f"got {[(k, v.stride) for k, v in shapes]}"
            )
        self.fpn_in_features = [k for k, _ in fpn_features][::-1]  # coarse to fine
        use_bias = norm == ""
        lateral_convs, output_convs = [], []
        for idx, (_, v) in enumerate(fpn_features):
            lateral = Conv2d(
                v.channels, conv_dim, kernel_size=1, bias=use_bias, norm=get_norm(norm, conv_dim)
            )
            output = Conv2d(
                conv_dim,
                conv_dim,
                kernel_size=3,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, conv_dim),
                activation=F.relu,
            )
            weight_init.c2_xavier_fill(lateral)
            weight_init.c2_xavier_fill(output)
            # Checkpoint names: adapter_1 / layer_1 is the finest level.
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        # Plain lists (the modules are registered above) ordered coarse to fine, as used.
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        pd = cfg.MODEL.MASK_FORMER.PIXEL_DECODER
        missing = [k for k in head.IN_FEATURES if k not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES {missing} are not backbone outputs {sorted(input_shape)}"
            )
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "transformer_in_features": list(pd.TRANSFORMER_IN_FEATURES),
            "transformer_dropout": pd.DROPOUT,
            "transformer_nheads": pd.NHEADS,
            "transformer_dim_feedforward": pd.DIM_FEEDFORWARD,
            "transformer_enc_layers": pd.NUM_ENCODER_LAYERS,
            "transformer_n_points": pd.NUM_POINTS,
            "conv_dim": head.CONVS_DIM,
            "mask_dim": cfg.MODEL.MASK_FORMER.MASK_DIM,
            "norm": head.NORM,
            "common_stride": head.COMMON_STRIDE,
            "deform_attn_impl": pd.DEFORM_ATTN_IMPL,
        }

    def forward(self, features: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """
        Args:
            features: backbone maps by name, [B, C_f, H/s_f, W/s_f].
        Returns:
            mask_features: [B, mask_dim, H/common_stride, W/common_stride].
            multi_scale_features: one [B, conv_dim, H_l, W_l] per transformer level, coarsest
                first (the transformer decoder's cross-attention levels).
        """
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise KeyError(f"pixel decoder needs features {missing}; got {sorted(features)}")
        srcs, pos = [], []
        for idx, name in enumerate(self.transformer_in_features):
            x = features[name].float()  # deformable attention and GroupNorm run in float32
            srcs.append(self.input_proj[idx](x))
            pos.append(self.pe_layer(x))
        memory, shapes = self.transformer(srcs, pos)
        bs = memory.shape[0]
        splits = memory.split([h * w for h, w in shapes], dim=1)
        multi_scale_features = [z.transpose(1, 2).reshape(bs, -1, h, w) for z, (h, w) in zip(splits, shapes)]

        out = multi_scale_features[-1]
        for name, lateral_conv, output_conv in zip(
            self.fpn_in_features, self.lateral_convs, self.output_convs
        ):
            cur = lateral_conv(features[name].float())
            out = output_conv(
                cur + F.interpolate(out, size=cur.shape[-2:], mode="bilinear", align_corners=False)
            )
        return self.mask_features(out), multi_scale_features
