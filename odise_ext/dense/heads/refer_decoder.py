# Adapted from wl-zhao/VPD@7154e611a2d890790b5399ab56189d2690a7e463:refer/lib/mask_predictor.py
"""LAVT-style decoder for referring segmentation, as VPD uses it.

Progressive top-down fusion of four feature maps (strides 8/16/32/64, with the cross-attention
maps over the sentence tokens already concatenated by the backbone):

  x = cat(up(s64 → s32), s32) → 2 × (conv3x3-norm-ReLU)          [hidden]
  x = cat(up(x → s16), s16)   → 2 × (conv3x3-norm-ReLU)          [hidden]
  x = cat(up(x → s8), s8)     → 2 × (conv3x3-norm-ReLU)          [hidden]
  logits = conv1x1(x) → 2 classes (background, referred object)

Upsampling is bilinear with align_corners=True, as in the reference. With ``lang_gate`` each
fused stage is additionally modulated by the sentence: x ← x ⊙ (1 + tanh(W·l̄ + b)), where l̄ is
the mean of the valid token features. W and b start at zero, so the gated decoder starts out
exactly equal to the ungated reference decoder and learns how much language to inject.
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

    def __init__(self, in_channels, hidden, norm):
        super().__init__()
        self.convs = nn.Sequential(
            *[
                Conv2d(
                    in_channels if i == 0 else hidden,
                    hidden,
                    kernel_size=3,
                    padding=1,
                    bias=not norm,
                    norm=get_norm(norm, hidden),
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
        norm,
        lang_gate,
        text_dim,
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
            norm (str): detectron2 norm name inside the fusion blocks.
            lang_gate (bool): gate each stage by the pooled sentence feature.
            text_dim (int): width of the token features given to ``forward`` (with gates).
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
        self.fuse32 = _FusionBlock(c64 + c32, hidden_dim, norm)
        self.fuse16 = _FusionBlock(hidden_dim + c16, hidden_dim, norm)
        self.fuse8 = _FusionBlock(hidden_dim + c8, hidden_dim, norm)
        self.predictor = nn.Conv2d(hidden_dim, NUM_REFER_CLASSES, kernel_size=1)
        self.gates = None
        if lang_gate:
            self.gates = nn.ModuleList(nn.Linear(text_dim, hidden_dim) for _ in range(3))
            for gate in self.gates:
                nn.init.zeros_(gate.weight)
                nn.init.zeros_(gate.bias)
        self.register_buffer(
            "class_weights", torch.tensor(class_weights, dtype=torch.float32), persistent=False
        )

    @classmethod
    def from_config(cls, cfg, input_shape, text_dim=None):
        """``text_dim``: width of the sentence tokens of the built backbone (None: only
        ``MODEL.VPD.REFER.TEXT_DIM`` says it)."""
        r = cfg.MODEL.VPD.REFER
        if text_dim is None:
            text_dim = r.TEXT_DIM
        elif r.TEXT_DIM and r.TEXT_DIM != text_dim:
            raise ValueError(
                f"MODEL.VPD.REFER.TEXT_DIM={r.TEXT_DIM} but the backbone's sentence tokens are {text_dim} wide; "
                "set it to 0 (derived from the model) or to the text encoder's width"
            )
        if r.LANG_GATE and text_dim <= 0:
            raise ValueError("the language gates need the token width: build through DenseReferSegmentor or set MODEL.VPD.REFER.TEXT_DIM")
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
            "norm": r.NORM,
            "lang_gate": r.LANG_GATE,
            "text_dim": text_dim,
            "class_weights": list(r.CLASS_WEIGHTS),
            "loss_weight": r.LOSS_WEIGHT,
        }

    @staticmethod
    def pool_language(lang_feats, lang_mask=None):
        """Mean of the valid tokens: [B, L, D] (+ [B, L] mask, 1 = valid) → [B, D]."""
        if lang_mask is None:
            return lang_feats.mean(dim=1)
        if lang_mask.shape != lang_feats.shape[:2]:
            raise ValueError(
                f"language mask {tuple(lang_mask.shape)} does not match token features "
                f"{tuple(lang_feats.shape)}"
            )
        m = lang_mask.to(lang_feats.dtype).unsqueeze(-1)
        count = m.sum(dim=1)
        check_all(count > 0, "a sentence has no valid tokens in its language mask")
        return (lang_feats * m).sum(dim=1) / count

    def _gate(self, x, stage, sentence):
        if self.gates is None:
            return x
        g = torch.tanh(self.gates[stage](sentence))
        return x * (1.0 + g[:, :, None, None])

    def layers(self, features, lang_feats=None, lang_mask=None):
        """Features (+ tokens [B, L, D], mask [B, L]) → logits [B, 2, H/s, W/s] (s: finest stride)."""
        sentence = None
        if self.gates is not None:
            if lang_feats is None:
                raise ValueError("LAVTReferDecoder with language gates needs lang_feats")
            sentence = self.pool_language(lang_feats, lang_mask)
        s8, s16, s32, s64 = (features[f] for f in self.in_features)
        x = self._gate(self.fuse32(_resize(s64, s32.shape[-2:]), s32), 0, sentence)
        x = self._gate(self.fuse16(_resize(x, s16.shape[-2:]), s16), 1, sentence)
        x = self._gate(self.fuse8(_resize(x, s8.shape[-2:]), s8), 2, sentence)
        return self.predictor(x)

    def forward(self, features, lang_feats=None, lang_mask=None, targets=None, image_size=None):
        """
        Args:
            features (dict[str, Tensor]): [B, C_i, H_i, W_i] maps named by ``in_features``.
            lang_feats (Tensor or None): [B, L, text_dim] token features (needed with gates).
            lang_mask (Tensor or None): [B, L], 1 for real tokens, 0 for padding.
            targets (Tensor or None): [B, H, W] referred-object masks (bool or 0/1).
            image_size (tuple or None): (H, W) of the logits; defaults to the targets' size,
                otherwise ``common_stride`` × the finest map.

        Returns:
            logits (Tensor): [B, 2, H, W]; softmax(...)[:, 1] is the object probability.
            losses (dict[str, Tensor]): {"loss_refer"} when ``targets`` is given, else {}.
        """
        logits = self.layers(features, lang_feats, lang_mask)
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
