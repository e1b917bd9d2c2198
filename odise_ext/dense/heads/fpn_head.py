# Adapted from open-mmlab/mmsegmentation@bf06aceee051cf2a07cf3207475251cfbda6ff10:mmseg/models/decode_heads/fpn_head.py
"""``FPNHead``: mmseg's ``FPNHead`` (VPD's segmentation head) as a detectron2 sem-seg head.

At test time it is detectron2's ``SemSegFPNHead`` (per level: 3x3 conv - norm - ReLU, each
followed by a bilinear x2 upsampling until the common stride; levels summed; 1x1 classifier;
logits upsampled bilinearly by the common stride), which is exactly mmseg's ``FPNHead`` when the
input size is a multiple of the coarsest stride. In training it adds what mmseg's decode head
does differently: ``Dropout2d`` before the classifier, the classifier initialised from
N(0, 0.01), and the cross-entropy averaged over every pixel of the (padded) batch, ignored ones
included (mmseg's ``avg_non_ignore=False``). Parameter names are ``SemSegFPNHead``'s.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from torch import nn

from ...utils.precision import float32_loss

__all__ = ["FPNHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class FPNHead(SemSegFPNHead):
    """Input: ``{name: [N, C, H / s, W / s]}`` FPN levels. Output: ``(logits [N, K, H, W], {})`` in
    inference, ``(None, {"loss_sem_seg": ...})`` in training (targets [N, H, W] int64)."""

    @configurable
    def __init__(
        self, input_shape: Dict[str, ShapeSpec], *, dropout: float = 0.0, **kwargs
    ):
        """
        Args:
            input_shape, kwargs: see detectron2's ``SemSegFPNHead``.
            dropout: ``Dropout2d`` probability before the classifier (mmseg: 0.1).
        """
        super().__init__(input_shape, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"FPNHead: dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        nn.init.normal_(self.predictor.weight, 0.0, 0.01)  # mmseg BaseDecodeHead's conv_seg init
        nn.init.zeros_(self.predictor.bias)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        args = super().from_config(cfg, input_shape)
        h = cfg.MODEL.FPN_HEAD
        args.update(dropout=h.DROPOUT)
        return args

    def layers(self, features):
        """FPN levels -> [N, K, H / common_stride, W / common_stride] logits."""
        x = None
        for head, f in zip(self.scale_heads, self.in_features):
            y = head(features[f])
            x = y if x is None else x + y
        return self.predictor(self.dropout(x))

    @float32_loss
    def losses(self, predictions, targets):
        """predictions [N, K, h, w] at the common stride, targets [N, H, W] (H = h x stride)."""
        predictions = F.interpolate(
            predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False
        )
        loss = F.cross_entropy(predictions, targets, reduction="none", ignore_index=self.ignore_value)
        loss = loss.mean()  # ignored pixels contribute 0 to the sum but count in the mean
        return {"loss_sem_seg": loss * self.loss_weight}
