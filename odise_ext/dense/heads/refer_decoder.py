# Adapted from wl-zhao/VPD@7154e611a2d890790b5399ab56189d2690a7e463:refer/lib/mask_predictor.py
"""LAVT-style decoder for referring segmentation, as VPD uses it.

Progressive top-down fusion of four feature maps (strides 8/16/32/64, with the cross-attention
maps over the sentence tokens already concatenated by the backbone):

  x = cat(up(s64 → s32), s32) → 2 × (conv3x3-norm-ReLU)          [hidden]
  x = cat(up(x → s16), s16)   → 2 × (conv3x3-norm-ReLU)          [hidden]
  x = cat(up(x → s8), s8)     → 2 × (conv3x3-norm-ReLU)          [hidden]
  logits = conv1x1(x) → 2 classes (background, referred object)

Upsampling is bilinear with align_corners=True, as in the reference; the norm is BatchNorm (VPD's
``SimpleDecoding``). The sentence reaches the decoder only through the backbone's features.
"""
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, get_norm

from .build import HEAD_REGISTRY
from ...utils.input_checks import check_all
from ...utils.precision import float32_loss

__all__ = ["LAVTReferDecoder"]

NUM_REFER_CLASSES = 2


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class _FusionBlock(nn.Module):
    """cat(top-down [B, C_td, h, w], skip [B, C_s, h, w]) → [B, hidden, h, w]."""

    def __init__(self, in_channels, hidden):
        super().__init__()
        self.convs = nn.Sequential(
            *[
                Conv2d(
                    in_channels if i == 0 else hidden,
                    hidden,
                    kernel_size=3,
                    padding=1,
                    bias=False,
                    norm=get_norm("BN", hidden),
                    activation=F.relu,
                )
                for i in range(2)
            ]
        )

    def forward(self, top_down, skip):
        return self.convs(torch.cat([top_down, skip], dim=1))


@HEAD_REGISTRY.register()
class LAVTReferDecoder(nn.Module):
    """Referring-segmentation decoder: features (+ sentence) → 2-class logits."""

    @configurable
    def __init__(
        self,
        *,
        in_features,
        in_channels,
        common_stride,
        hidden_dim,
        class_weights,
        loss_weight,
    ):
        """
        Args:
            in_features (list[str]): names of the stride-8, -16, -32, -64 features.
            in_channels (list[int]): their channels, same order.
            common_stride (int): stride of the finest feature (default output = its size ×
                this stride).
            hidden_dim (int): channels of the fusion convs.
            class_weights (list[float]): cross-entropy weights of background / object.
            loss_weight (float): multiplier of the loss.
        """
        super().__init__()
        if len(in_features) != 4 or len(in_channels) != 4:
            raise ValueError(
                f"LAVTReferDecoder needs four features (strides 8/16/32/64), got {in_features}"
            )
        if len(class_weights) != NUM_REFER_CLASSES:
            raise ValueError(f"class_weights must have 2 entries, got {list(class_weights)}")
        self.in_features = list(in_features)
        self.common_stride = int(common_stride)
        self.loss_weight = loss_weight
        c8, c16, c32, c64 = in_channels
        self.fuse32 = _FusionBlock(c64 + c32, hidden_dim)
        self.fuse16 = _FusionBlock(hidden_dim + c16, hidden_dim)
        self.fuse8 = _FusionBlock(hidden_dim + c8, hidden_dim)
        self.predictor = nn.Conv2d(hidden_dim, NUM_REFER_CLASSES, kernel_size=1)
        self.register_buffer(
            "class_weights", torch.tensor(class_weights, dtype=torch.float32), persistent=False
        )

    @classmethod
    def from_config(cls, cfg, input_shape):
        r = cfg.MODEL.REFER_HEAD
        missing = [f for f in r.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(f"refer decoder features {missing} not among {sorted(input_shape)}")
        finest = input_shape[r.IN_FEATURES[0]].stride
        if finest is None:
            raise ValueError(f"refer decoder: feature {r.IN_FEATURES[0]!r} has no stride")
        return {
            "in_features": list(r.IN_FEATURES),
            "in_channels": [input_shape[f].channels for f in r.IN_FEATURES],
            "common_stride": finest,
            "hidden_dim": r.HIDDEN_DIM,
            "class_weights": list(r.CLASS_WEIGHTS),
            "loss_weight": r.LOSS_WEIGHT,
        }

    def layers(self, features):
        """Features -> logits [B, 2, H/s, W/s] (s: finest stride)."""
        s8, s16, s32, s64 = (features[f] for f in self.in_features)
        x = self.fuse32(_resize(s64, s32.shape[-2:]), s32)
        x = self.fuse16(_resize(x, s16.shape[-2:]), s16)
        x = self.fuse8(_resize(x, s8.shape[-2:]), s8)
        return self.predictor(x)

    def forward(self, features, targets=None, image_size=None):
        """
        Args:
            features (dict[str, Tensor]): [B, C_i, H_i, W_i] maps named by ``in_features``.
            targets (Tensor or None): [B, H, W] referred-object masks (bool or 0/1).
            image_size (tuple or None): (H, W) of the logits; defaults to the targets' size,
                otherwise ``common_stride`` × the finest map.

        Returns:
            logits (Tensor): [B, 2, H, W]; softmax(...)[:, 1] is the object probability.
            losses (dict[str, Tensor]): {"loss_refer"} when ``targets`` is given, else {}.
        """
        logits = self.layers(features)
        if image_size is None:
            if targets is not None:
                image_size = targets.shape[-2:]
            else:
                image_size = tuple(self.common_stride * s for s in logits.shape[-2:])
        logits = _resize(logits, tuple(image_size))
        losses = {}
        if targets is not None:
            if targets.shape != (logits.shape[0],) + logits.shape[-2:]:
                raise ValueError(
                    f"refer targets {tuple(targets.shape)} do not match logits "
                    f"{tuple(logits.shape)}"
                )
            targets = targets.long()
            check_all((targets >= 0) & (targets <= 1), "refer targets must be binary masks (0/1)")
            losses["loss_refer"] = self.loss_weight * float32_loss(F.cross_entropy)(
                logits, targets, weight=self.class_weights
            )
        return logits, losses
