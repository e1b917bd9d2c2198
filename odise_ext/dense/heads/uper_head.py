# Adapted from open-mmlab/mmsegmentation@46fd215c9194023e7106d61989e3dc34bc80b0cd:mmseg/models/decode_heads/uper_head.py
"""UPerNet semantic segmentation head (Xiao et al., ECCV 2018) with an auxiliary FCN head, as
used by Meta-Prompts: pyramid pooling (PPM) on the coarsest feature, FPN top-down fusion, all
levels concatenated at the finest resolution. Loss = CE + LOVASZ_WEIGHT·Lovász-softmax on the main
head, plus AUX_WEIGHT·CE on the auxiliary FCN head.

Registered in detectron2's ``SEM_SEG_HEADS_REGISTRY`` (select with
``MODEL.SEM_SEG_HEAD.NAME = "UPerHead"``) and follows the interface of its ``SemSegFPNHead``:
``forward(features, targets)`` returns ``(None, losses)`` in training and
``(logits at finest-stride × stride, {})`` in inference.
"""
import fvcore.nn.weight_init as weight_init
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, get_norm
from detectron2.modeling.meta_arch.semantic_seg import SEM_SEG_HEADS_REGISTRY

from ..losses.lovasz import lovasz_softmax
from ...utils.precision import float32_loss

__all__ = ["UPerHead", "FCNAuxHead"]


def _conv_norm_relu(in_channels, out_channels, kernel_size, norm):
    # A conv bias is redundant in front of a normalisation layer.
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        padding=kernel_size // 2,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=F.relu,
    )
    weight_init.c2_msra_fill(conv)
    return conv


def _classifier(in_channels, num_classes):
    predictor = nn.Conv2d(in_channels, num_classes, kernel_size=1)
    nn.init.normal_(predictor.weight, std=0.01)
    nn.init.zeros_(predictor.bias)
    return predictor


def _dropout(p):
    # Kept apart from the classifier so that its key is ``predictor.*`` for any dropout (mmseg's
    # ``dropout`` + ``conv_seg``).
    return nn.Dropout2d(p) if p > 0 else nn.Identity()


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """PPM: [B, C, H, W] → [B, C + len(scales)·channels, H, W] (input first, then each scale)."""

    def __init__(self, in_channels, channels, pool_scales, norm):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), _conv_norm_relu(in_channels, channels, 1, norm))
            for s in pool_scales
        )

    def forward(self, x):
        return torch.cat([x] + [_resize(stage(x), x.shape[-2:]) for stage in self.stages], dim=1)


class FCNAuxHead(nn.Module):
    """Auxiliary FCN head (mmseg's ``FCNHead`` with ``concat_input=False``, as Meta-Prompts): num_convs
    × (conv3x3-norm-ReLU), then a 1x1 classifier. [B, C_in, H, W] → [B, num_classes, H, W]."""

    def __init__(self, in_channels, channels, num_convs, num_classes, norm, dropout):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"the auxiliary FCN head needs at least one conv, got {num_convs}")
        self.convs = nn.Sequential(
            *[
                _conv_norm_relu(in_channels if i == 0 else channels, channels, 3, norm)
                for i in range(num_convs)
            ]
        )
        self.dropout = _dropout(dropout)
        self.predictor = _classifier(channels, num_classes)

    def forward(self, x):
        return self.predictor(self.dropout(self.convs(x)))


@SEM_SEG_HEADS_REGISTRY.register()
class UPerHead(nn.Module):
    """UPerNet head over ``in_features`` (finest first) plus an optional auxiliary FCN head."""

    @configurable
    def __init__(
        self,
        *,
        in_features,
        in_channels,
        in_strides,
        num_classes,
        channels,
        pool_scales,
        norm,
        dropout,
        ignore_value,
        loss_weight,
        lovasz_weight,
        aux_in_feature,
        aux_in_channels,
        aux_channels,
        aux_num_convs,
        aux_weight,
    ):
        """
        Args:
            in_features (list[str]): feature names ordered from finest to coarsest.
            in_channels (list[int]), in_strides (list[int]): their channels and strides.
            num_classes (int): number of classes.
            channels (int): width of every internal conv.
            pool_scales (list[int]): adaptive-pool output sizes of the PPM.
            norm (str): detectron2 norm name for every conv ("" = none).
            dropout (float): dropout before the classifiers.
            ignore_value (int): label ignored by the losses.
            loss_weight (float): weight of the main cross-entropy.
            lovasz_weight (float): weight of the Lovász-softmax loss (0 disables it).
            aux_in_feature (str): feature of the auxiliary head ("" = no auxiliary head).
            aux_in_channels (int): its channels.
            aux_channels, aux_num_convs: auxiliary FCN head shape.
            aux_weight (float): weight of the auxiliary cross-entropy.
        """
        super().__init__()
        if len(in_features) < 2:
            raise ValueError(f"UPerHead needs at least two features, got {list(in_features)}")
        if list(in_strides) != sorted(in_strides):
            raise ValueError(
                f"UPerHead features {list(in_features)} must be ordered finest first, "
                f"got strides {list(in_strides)}"
            )
        self.in_features = list(in_features)
        self.common_stride = in_strides[0]
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.lovasz_weight = lovasz_weight
        self.aux_in_feature = aux_in_feature
        self.aux_weight = aux_weight

        self.ppm = PyramidPooling(in_channels[-1], channels, pool_scales, norm)
        self.ppm_bottleneck = _conv_norm_relu(
            in_channels[-1] + len(pool_scales) * channels, channels, 3, norm
        )
        self.lateral_convs = nn.ModuleList(
            _conv_norm_relu(c, channels, 1, norm) for c in in_channels[:-1]
        )
        self.fpn_convs = nn.ModuleList(
            _conv_norm_relu(channels, channels, 3, norm) for _ in in_channels[:-1]
        )
        self.fpn_bottleneck = _conv_norm_relu(len(in_channels) * channels, channels, 3, norm)
        self.dropout = _dropout(dropout)
        self.predictor = _classifier(channels, num_classes)
        self.aux_head = (
            FCNAuxHead(
                aux_in_channels,
                aux_channels,
                aux_num_convs,
                num_classes,
                norm,
                dropout,
            )
            if aux_in_feature
            else None
        )

    @classmethod
    def from_config(cls, cfg, input_shape):
        s, u = cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.UPER_HEAD
        missing = [f for f in s.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(f"UPerHead features {missing} not among {sorted(input_shape)}")
        names = sorted(s.IN_FEATURES, key=lambda f: input_shape[f].stride)
        aux = u.AUX_IN_FEATURE
        if aux and aux not in input_shape:
            raise ValueError(f"MODEL.UPER_HEAD.AUX_IN_FEATURE {aux!r} not among {sorted(input_shape)}")
        return {
            "in_features": names,
            "in_channels": [input_shape[f].channels for f in names],
            "in_strides": [input_shape[f].stride for f in names],
            "num_classes": s.NUM_CLASSES,
            "channels": u.CHANNELS,
            "pool_scales": list(u.POOL_SCALES),
            "norm": s.NORM,
            "dropout": u.DROPOUT,
            "ignore_value": s.IGNORE_VALUE,
            "loss_weight": s.LOSS_WEIGHT,
            "lovasz_weight": u.LOVASZ_WEIGHT,
            "aux_in_feature": aux,
            "aux_in_channels": input_shape[aux].channels if aux else 0,
            "aux_channels": u.AUX_CHANNELS,
            "aux_num_convs": u.AUX_NUM_CONVS,
            "aux_weight": u.AUX_WEIGHT,
        }

    def layers(self, features):
        """Features dict → main logits [B, num_classes, H/s, W/s] at the finest stride s."""
        xs = [features[f] for f in self.in_features]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, xs[:-1])]
        laterals.append(self.ppm_bottleneck(self.ppm(xs[-1])))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[-2:]
        fused = self.fpn_bottleneck(torch.cat([outs[0]] + [_resize(o, size) for o in outs[1:]], 1))
        return self.predictor(self.dropout(fused))

    def _upsample(self, logits, targets=None):
        # Training resizes to the label map (exact for any padding); inference follows
        # SemSegFPNHead and scales by the finest stride.
        if targets is not None:
            return _resize(logits, targets.shape[-2:])
        return F.interpolate(
            logits, scale_factor=self.common_stride, mode="bilinear", align_corners=False
        )

    def forward(self, features, targets=None):
        """
        Args:
            features (dict[str, Tensor]): [B, C_i, H_i, W_i] maps.
            targets (Tensor or None): [B, H, W] int64 labels (training only).

        Returns:
            In training: (None, {"loss_sem_seg", "loss_lovasz"?, "loss_sem_seg_aux"?}).
            In inference: ([B, num_classes, H, W] logits, {}).
        """
        logits = self.layers(features)
        if not self.training:
            return self._upsample(logits), {}
        if targets is None:
            raise ValueError("UPerHead: targets are required in training mode")
        return None, self.losses(logits, features, targets)

    @float32_loss
    def losses(self, logits, features, targets):
        logits = self._upsample(logits, targets)
        losses = {
            "loss_sem_seg": self.loss_weight
            * F.cross_entropy(logits, targets, ignore_index=self.ignore_value)
        }
        if self.lovasz_weight > 0:
            losses["loss_lovasz"] = self.lovasz_weight * lovasz_softmax(
                logits.softmax(dim=1), targets, ignore_index=self.ignore_value
            )
        if self.aux_head is not None:
            aux = self._upsample(self.aux_head(features[self.aux_in_feature]), targets)
            losses["loss_sem_seg_aux"] = self.aux_weight * F.cross_entropy(
                aux, targets, ignore_index=self.ignore_value
            )
        return losses
