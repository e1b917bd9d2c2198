"""``VPDBackbone``: VPD features as a detectron2 backbone.

The whole (padded) image goes through the VAE and the UNet at once — no ODISE windows; large
test images are handled by the meta-architectures' sliding-window inference. Per stride s the
taps of that stride (resized to H/s x W/s when they live on another grid, e.g. ODISE's stride-64
tap used at 32) are concatenated, and the averaged cross-attention maps of that stride are
appended when ``ATTENTION_STRIDES`` lists s (VPD: 16 and 32; one channel per prompt token).
Meta-Prompts' re-arrangement of these levels is ``metaprompts.MetaPromptsBackbone``.

With VPD's taps (outputs of ldm output_blocks 1/4/7/11 = diffusers
``up_blocks.0.resnets.1``, ``up_blocks.1.attentions.1``, ``up_blocks.2.attentions.1``,
``up_blocks.3.attentions.2``; strides 64/32/16/8) the outputs are res6/res5/res4/res3 with SD v1
channels 1280 / 1280+L / 640+L / 320.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ..diffusion.feature_extractor import DiffusionFeatureExtractor, Extraction
from ..diffusion.neck import PromptedFPN
from ..diffusion.output import BackboneOutput
from ..diffusion.prompts import PromptModule
from .attention import attention_channels, average_attention_by_stride

__all__ = ["VPDBackbone", "build_vpd_feature_extractor", "build_vpd_fpn_backbone", "level_name"]


def level_name(stride: int) -> str:
    return f"res{int(math.log2(stride))}"


def build_vpd_feature_extractor(cfg) -> DiffusionFeatureExtractor:
    """The diffusion feature extractor with VPD / Meta-Prompts' options: ``MODEL.DIFFUSION``'s UNet
    mode, gradient checkpointing and refinement loops, attention recording for
    ``MODEL.VPD.ATTENTION_STRIDES``."""
    d = cfg.MODEL.DIFFUSION
    return DiffusionFeatureExtractor(
        cfg,
        unet_mode=d.UNET_MODE,
        loops=d.REFINE.LOOPS,
        loop_time_embed=d.REFINE.LOOP_TIME_EMBED,
        gradient_checkpointing=d.GRADIENT_CHECKPOINTING,
        record_attention=bool(cfg.MODEL.VPD.ATTENTION_STRIDES),
    )


@BACKBONE_REGISTRY.register()
class VPDBackbone(Backbone):
    """Input: [B, 3, H, W] RGB in [0, 1] (``PIXEL_MEAN`` 0, ``PIXEL_STD`` 255), zero-padded to
    ``size_divisibility``. Output: :class:`BackboneOutput` with
    ``{"res<k>": [B, C_k, H / 2^k, W / 2^k]}`` float32, the prompt the UNet saw (e.g. the
    sentence tokens of ``SentencePrompt`` in its ``state``) and the recorded attention maps."""

    @configurable
    def __init__(
        self,
        *,
        feature_extractor: DiffusionFeatureExtractor,
        attention_strides: Sequence[int],
        out_features: Sequence[str],
    ):
        """
        Args:
            feature_extractor: VAE + UNet + prompt module; its taps carry their strides.
            attention_strides: strides whose level gets the averaged attention maps appended.
            out_features: subset of the produced ``res<k>`` names.
        """
        super().__init__()
        self.feature_extractor = feature_extractor
        taps = feature_extractor.taps
        for t in taps:
            if t.stride & (t.stride - 1):
                raise ValueError(f"Tap {t.spec!r}: stride {t.stride} is not a power of two.")
        self.level_strides = sorted({t.stride for t in taps})
        self.attention_strides = [int(s) for s in attention_strides]
        missing = [s for s in self.attention_strides if s not in self.level_strides]
        if missing:
            raise ValueError(f"ATTENTION_STRIDES {missing} have no tap (tap strides {self.level_strides})")
        if self.attention_strides and feature_extractor.recorder is None:
            raise ValueError("attention features need a feature extractor that records attention")
        num_tokens = feature_extractor.prompt.num_tokens
        if self.attention_strides and num_tokens is None:
            raise ValueError(
                f"{type(feature_extractor.prompt).__name__} has no fixed `num_tokens`; attention features "
                "need a prompt module with a fixed context length"
            )
        channels = {s: 0 for s in self.level_strides}
        for t, c in zip(taps, feature_extractor.tap_channels):
            channels[t.stride] += c
        for s in self.attention_strides:
            channels[s] += num_tokens
        # Channels of each level of :meth:`levels`, in ``level_strides`` order.
        self.level_channels: List[int] = [channels[s] for s in self.level_strides]
        self._set_outputs(out_features, {s: c for s, c in zip(self.level_strides, self.level_channels)})
        unet_levels = len(feature_extractor.unet.module.config.block_out_channels)
        unet_stride = feature_extractor.latent_stride * 2 ** (unet_levels - 1)
        self._size_divisibility = max(unet_stride, max(self.level_strides))

    def _set_outputs(self, out_features: Sequence[str], levels: Dict[int, int]) -> None:
        """Select ``out_features`` among the output levels {stride: channels}."""
        names = {level_name(s): (s, c) for s, c in levels.items()}
        unknown = [f for f in out_features if f not in names]
        if unknown:
            raise ValueError(f"OUT_FEATURES {unknown} are not produced (levels {sorted(names)})")
        self._out_features = list(out_features)
        self._out_feature_strides = {f: names[f][0] for f in out_features}
        self._out_feature_channels = {f: names[f][1] for f in out_features}

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None):
        if input_shape is not None and input_shape.channels not in (None, 3):
            raise ValueError(f"{cls.__name__} takes RGB input, got {input_shape.channels} channels.")
        b = cfg.MODEL.VPD
        return {
            "feature_extractor": build_vpd_feature_extractor(cfg),
            "attention_strides": list(b.ATTENTION_STRIDES),
            "out_features": list(b.OUT_FEATURES),
        }

    @property
    def prompt(self) -> PromptModule:
        """The prompt module the UNet is conditioned on (its typed attributes: token count and
        width, steps)."""
        return self.feature_extractor.prompt

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
            for f in self._out_features
        }

    def levels(self, x: torch.Tensor, prompt_inputs: Optional[dict] = None) -> Tuple[List[torch.Tensor], Extraction]:
        """[B, 3, H, W] in [0, 1] -> (one [B, C_s, H / s, W / s] map per ``level_strides`` s,
        with ``level_channels``; the extraction: prompt and attention maps)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects [B, 3, H, W] images, got {tuple(x.shape)}.")
        height, width = x.shape[-2:]
        d = self.size_divisibility
        if height % d or width % d:
            raise ValueError(f"Image size {height}x{width} must be divisible by {d} (pad it).")
        ex = self.feature_extractor.extract(x, None, prompt_inputs)
        levels: Dict[int, List[torch.Tensor]] = OrderedDict((s, []) for s in self.level_strides)
        for feat, tap in zip(ex.features, self.feature_extractor.taps):
            size = (height // tap.stride, width // tap.stride)
            if tuple(feat.shape[-2:]) != size:
                feat = F.interpolate(feat, size=size, mode="nearest")
            levels[tap.stride].append(feat)
        averaged = average_attention_by_stride(ex.attention, self.feature_extractor.latent_stride)
        for s in self.attention_strides:
            size = (height // s, width // s)
            levels[s].append(attention_channels(averaged, s, size).to(levels[s][0].dtype))
        maps = [torch.cat(parts, dim=1) if len(parts) > 1 else parts[0] for parts in levels.values()]
        return maps, ex

    def forward(self, x: torch.Tensor, prompt_inputs: Optional[dict] = None) -> BackboneOutput:
        """[B, 3, H, W] in [0, 1] -> :class:`BackboneOutput` (``{"res<k>": [B, C_k, H / 2^k, W / 2^k]}``)."""
        maps, ex = self.levels(x, prompt_inputs)
        named = {level_name(s): m for s, m in zip(self.level_strides, maps)}
        return BackboneOutput({f: named[f] for f in self._out_features}, ex.prompt, ex.attention)


@BACKBONE_REGISTRY.register()
def build_vpd_fpn_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> PromptedFPN:
    """VPD's segmentation backbone: :class:`VPDBackbone` + detectron2's FPN neck
    (``MODEL.FPN.IN_FEATURES`` / ``OUT_CHANNELS`` / ``NORM`` / ``FUSE_TYPE``; outputs p<k>) that
    keeps the :class:`BackboneOutput` contract (prompt, attention, ``prompt_inputs``)."""
    bottom_up = VPDBackbone(cfg, input_shape)
    f = cfg.MODEL.FPN
    return PromptedFPN(
        bottom_up=bottom_up,
        in_features=list(f.IN_FEATURES),
        out_channels=f.OUT_CHANNELS,
        norm=f.NORM,
        top_block=None,
        fuse_type=f.FUSE_TYPE,
    )
