"""``DiffusionBackbone``: frozen SD features as a detectron2 backbone (DESIGN.md §1, §7).

Images are cut into ODISE's sliding windows, all windows of the batch run through the
:class:`DiffusionFeatureExtractor` in one call, every tap is nearest-resized to window/stride and
projected by its own bottleneck block, projections with equal stride are summed, and the
windows are pasted back into full maps (overlaps averaged): ``res2`` .. ``res5``.

ODISE checkpoint correspondence (for a converter): ``backbone.feature_extractor.<p>`` of the
implicit captioner -> ``backbone.feature_extractor.prompt.<p>``;
``backbone.feature_projections.<i>.0.<rest>`` -> ``backbone.feature_projections.<i>.<rest>``.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.resnet import BottleneckBlock
from torch import nn

from .feature_extractor import DiffusionFeatureExtractor
from .windows import cut_windows, merge_windows, window_boxes

__all__ = ["DiffusionBackbone", "build_diffusion_backbone"]


@BACKBONE_REGISTRY.register()
class DiffusionBackbone(Backbone):
    """Multi-scale features of a frozen diffusion model.

    Input: ``[B, 3, H, W]`` RGB in **[0, 1]** (the meta-architecture normalises with
    ``PIXEL_MEAN = [0, 0, 0]``, ``PIXEL_STD = [255, 255, 255]``), zero-padded bottom/right as in
    detectron2's ``ImageList``; H and W must be divisible by the largest output stride.
    Output: ``{"res<k>": [B, out_channels, H / 2^k, W / 2^k]}`` float32.
    """

    @configurable
    def __init__(
        self,
        *,
        feature_extractor: DiffusionFeatureExtractor,
        window_size: int,
        projection_channels: int,
        bottleneck_channels: int,
        norm: str,
        out_features: Sequence[str],
    ):
        """
        Args:
            feature_extractor: runs the frozen model on windows; its taps carry their strides.
            window_size: maximum window side, and the side windows are resized to.
            projection_channels: channels of every output level.
            bottleneck_channels: bottleneck width of the per-tap projection blocks.
            norm: detectron2 norm of the projection blocks ("GN" in ODISE).
            out_features: subset of the ``res<k>`` levels the taps produce.
        """
        super().__init__()
        self.feature_extractor = feature_extractor
        self.window_size = window_size
        taps = feature_extractor.taps
        self.feature_projections = nn.ModuleList(
            BottleneckBlock(
                c, projection_channels, bottleneck_channels=bottleneck_channels, norm=norm
            )
            for c in feature_extractor.tap_channels
        )
        self.tap_strides = [t.stride for t in taps]
        for t in taps:
            if t.stride & (t.stride - 1):
                raise ValueError(f"Tap {t.spec!r}: stride {t.stride} is not a power of two.")
        levels = {f"res{s.bit_length() - 1}": s for s in sorted(set(self.tap_strides))}
        unknown = [f for f in out_features if f not in levels]
        if unknown:
            raise ValueError(
                f"OUT_FEATURES {unknown} are not produced by the taps (levels {sorted(levels)})."
            )
        self._out_features = list(out_features)
        self._out_feature_strides = {f: levels[f] for f in out_features}
        self._out_feature_channels = {f: projection_channels for f in out_features}

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None, clip=None):
        """``clip``: optional frozen ``ClipWrapper`` to share with the prompt module."""
        d = cfg.MODEL.DIFFUSION
        if input_shape is not None and input_shape.channels not in (None, 3):
            raise ValueError(
                f"DiffusionBackbone takes RGB input, got {input_shape.channels} channels."
            )
        return {
            "feature_extractor": DiffusionFeatureExtractor(cfg, clip=clip),
            "window_size": d.WINDOW_SIZE,
            "projection_channels": d.PROJECTION.OUT_CHANNELS,
            "bottleneck_channels": d.PROJECTION.BOTTLENECK_CHANNELS,
            "norm": d.PROJECTION.NORM,
            "out_features": d.OUT_FEATURES,
        }

    @property
    def size_divisibility(self) -> int:
        return max(self._out_feature_strides.values())

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

    def forward(
        self, x: torch.Tensor, prompt_inputs: Optional[dict] = None
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: [B, 3, H, W] RGB in [0, 1], padded.
            prompt_inputs: task inputs of the prompt module (e.g. per-image phrases), passed on.
        Returns:
            ``{"res<k>": [B, C, H / 2^k, W / 2^k]}`` for the configured out features.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"DiffusionBackbone expects [B, 3, H, W] images, got {tuple(x.shape)}."
            )
        height, width = x.shape[-2:]
        divisor = self.size_divisibility
        if height % divisor or width % divisor:
            raise ValueError(
                f"Image size {height}x{width} must be divisible by {divisor} (pad it)."
            )
        boxes = window_boxes(height, width, self.window_size)
        side = boxes[0][1] - boxes[0][0]
        windows = cut_windows(x, boxes, self.window_size)
        image_index = torch.arange(x.shape[0], device=x.device).repeat_interleave(len(boxes))
        taps = self.feature_extractor(windows, image_index, prompt_inputs)

        per_level: Dict[int, torch.Tensor] = OrderedDict()
        for feat, stride, proj, channels in zip(
            taps, self.tap_strides, self.feature_projections, self.feature_extractor.tap_channels
        ):
            if feat.shape[1] != channels:
                raise RuntimeError(f"A tap has {feat.shape[1]} channels, expected {channels}.")
            size = (side // stride, side // stride)
            if feat.shape[-2:] != size:
                feat = F.interpolate(feat, size=size, mode="nearest")
            out = proj(feat)
            per_level[stride] = per_level[stride] + out if stride in per_level else out

        outputs = {}
        for name in self._out_features:
            stride = self._out_feature_strides[name]
            outputs[name] = merge_windows(per_level[stride], boxes, stride, (height, width))
        return outputs

    def tap_names(self) -> List[str]:
        """Config strings of the taps, in projection order."""
        return [t.spec for t in self.feature_extractor.taps]


def build_diffusion_backbone(cfg, clip=None) -> DiffusionBackbone:
    """Build a :class:`DiffusionBackbone` from ``cfg``.

    Args:
        cfg: the config.
        clip: an already built frozen CLIP (``ClipWrapper``) that the implicit captioner should
            share (e.g. with ODISE's CLIP classifier) instead of loading a second copy.
    """
    return DiffusionBackbone(cfg, clip=clip)
