"""The diffusion backbone: frozen SD features as a detectron2 backbone, one call for every task.

``DiffusionBackbone`` (the core) runs the whole padded batch through the
:class:`DiffusionFeatureExtractor` once: every tap is nearest-resized to image/stride, projected
by its own bottleneck block, and projections with equal stride are summed into ``res<k>``. It
returns a :class:`BackboneOutput`: the features by level, the prompt the UNet actually saw and,
when the prompt module asks for them, the UNet's cross-attention maps.

ODISE's sliding windows around the same core are ``odise.backbone.WindowedDiffusionBackbone``.

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
from .output import BackboneOutput
from .prompts import PromptModule

__all__ = ["DiffusionBackbone", "build_diffusion_backbone"]


@BACKBONE_REGISTRY.register()
class DiffusionBackbone(Backbone):
    """Multi-scale features of a (frozen) diffusion model, for the whole image at once.

    Input: ``[B, 3, H, W]`` RGB in **[0, 1]** (meta-architectures normalise with
    ``PIXEL_MEAN = [0, 0, 0]``, ``PIXEL_STD = [255, 255, 255]``), zero-padded bottom/right as in
    detectron2's ``ImageList``; H and W must be divisible by ``size_divisibility``.
    Output: :class:`BackboneOutput` with ``{"res<k>": [B, out_channels, H / 2^k, W / 2^k]}``
    float32.
    """

    # Whether the backbone cuts images into windows (then ``prompt`` / ``attention`` of its output
    # are per window); False: the padded batch is one UNet batch.
    windowed: bool = False

    @configurable
    def __init__(
        self,
        *,
        feature_extractor: DiffusionFeatureExtractor,
        projection_channels: int,
        bottleneck_channels: int,
        norm: str,
        out_features: Sequence[str],
    ):
        """
        Args:
            feature_extractor: runs the diffusion model; its taps carry their strides.
            projection_channels: channels of every output level.
            bottleneck_channels: bottleneck width of the per-tap projection blocks.
            norm: detectron2 norm of the projection blocks ("GN" in ODISE).
            out_features: subset of the ``res<k>`` levels the taps produce.
        """
        super().__init__()
        self.feature_extractor = feature_extractor
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
                f"{cls.__name__} takes RGB input, got {input_shape.channels} channels."
            )
        return {
            "feature_extractor": DiffusionFeatureExtractor(cfg, clip=clip),
            "projection_channels": d.PROJECTION.OUT_CHANNELS,
            "bottleneck_channels": d.PROJECTION.BOTTLENECK_CHANNELS,
            "norm": d.PROJECTION.NORM,
            "out_features": d.OUT_FEATURES,
        }

    @property
    def size_divisibility(self) -> int:
        return max(self._out_feature_strides.values())

    @property
    def prompt(self) -> PromptModule:
        """The prompt module the UNet is conditioned on (its typed attributes: token count and
        width, steps, a shareable CLIP)."""
        return self.feature_extractor.prompt

    @property
    def attention_layer_names(self) -> List[str]:
        """Names of the cross-attention layers whose maps :meth:`forward` returns (empty when
        the prompt module does not ask for attention)."""
        recorder = self.feature_extractor.recorder
        return list(recorder.layer_names) if recorder is not None else []

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{type(self).__name__} expects [B, 3, H, W] images, got {tuple(x.shape)}."
            )
        height, width = x.shape[-2:]
        divisor = self.size_divisibility
        if height % divisor or width % divisor:
            raise ValueError(
                f"Image size {height}x{width} must be divisible by {divisor} (pad it)."
            )

    def _project(self, taps: Sequence[torch.Tensor], size) -> Dict[int, torch.Tensor]:
        """Per-tap projections at image ``size`` / stride, summed per stride: {stride: map}."""
        per_level: Dict[int, torch.Tensor] = OrderedDict()
        for feat, stride, proj, channels in zip(
            taps, self.tap_strides, self.feature_projections, self.feature_extractor.tap_channels
        ):
            if feat.shape[1] != channels:
                raise RuntimeError(f"A tap has {feat.shape[1]} channels, expected {channels}.")
            grid = (size[0] // stride, size[1] // stride)
            if feat.shape[-2:] != grid:
                feat = F.interpolate(feat, size=grid, mode="nearest")
            out = proj(feat)
            per_level[stride] = per_level[stride] + out if stride in per_level else out
        return per_level

    def forward(
        self,
        x: torch.Tensor,
        prompt_inputs: Optional[dict] = None,
        image_index: Optional[torch.Tensor] = None,
    ) -> BackboneOutput:
        """
        Args:
            x: [N, 3, H, W] RGB in [0, 1], padded.
            prompt_inputs: per-call inputs of the prompt module (e.g. per-image phrases).
            image_index: [N] int64 batch image of each row of ``x`` (default: arange(N)); the
                windowed backbone passes the image each window was cut from.
        Returns:
            :class:`BackboneOutput` with ``{"res<k>": [N, C, H / 2^k, W / 2^k]}``.
        """
        self._check_input(x)
        ex = self.feature_extractor.extract(x, image_index, prompt_inputs)
        per_level = self._project(ex.features, tuple(x.shape[-2:]))
        features = {f: per_level[self._out_feature_strides[f]] for f in self._out_features}
        return BackboneOutput(features, ex.prompt, ex.attention)


def build_diffusion_backbone(cfg, clip=None) -> DiffusionBackbone:
    """Build ``MODEL.BACKBONE.NAME`` from detectron2's ``BACKBONE_REGISTRY`` with a shared CLIP.

    Args:
        cfg: the config; the named backbone must be a :class:`DiffusionBackbone`.
        clip: an already built frozen CLIP (``ClipWrapper``) that the implicit captioner should
            share (e.g. with ODISE's CLIP classifier) instead of loading a second copy.
    """
    name = cfg.MODEL.BACKBONE.NAME
    cls = BACKBONE_REGISTRY.get(name)
    if not (isinstance(cls, type) and issubclass(cls, DiffusionBackbone)):
        raise ValueError(f"MODEL.BACKBONE.NAME={name!r} is not a DiffusionBackbone")
    return cls(cfg, clip=clip)
