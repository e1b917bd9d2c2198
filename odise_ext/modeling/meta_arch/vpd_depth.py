"""Monocular depth estimation with a diffusion backbone: VPD and Meta-Prompts (DESIGN.md §6).

Backbone (``VPDBackbone``; Meta-Prompts variant by config: meta prompts, refinement loops and
re-arrangement with ``UPSAMPLE 1``) -> VPD depth decoder (``MODEL.VPD.DEPTH``) with SiLog loss.

Every prediction pads its (same-size) images bottom/right to the backbone's size divisibility with
``MODEL.VPD.BACKBONE.PAD_VALUE`` and tells the head the unpadded size (so that it can crop its
fused map, ``MODEL.VPD.DEPTH.CROP_FUSED``). Test: whole image or sliding windows; with the flip
test each window (or the whole image) is averaged with the mirrored prediction on its mirror,
then overlapping windows are averaged (VPD's NYUv2 protocol: two 480 x 480 windows at x = 0 and
x = 160 of the 480 x 640 image, each with its flip). The prediction is resized (bilinear) to the
ground truth's resolution when they differ.

Per-image prompt inputs: ``scene`` (a scene class name, for ``SceneClassPrompt``) when present.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ..heads import build_depth_head
from ..vpd import backbone as _vpd_backbone  # noqa: F401  (registers the VPD backbones)
from ..vpd.sliding_window import sliding_window_inference
from .vpd_base import VPDBaseModel, vpd_base_config

__all__ = ["VPDDepthEstimator"]


@META_ARCH_REGISTRY.register()
class VPDDepthEstimator(VPDBaseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), optional ``height``/``width`` (output
    size), optional ``scene`` (scene class name) and, in training, ``depth`` [H, W] float metres
    (0 = no measurement).
    Outputs (inference): ``{"depth": [height, width] metres}`` per image.
    """

    @configurable
    def __init__(self, *, depth_head: nn.Module, **kwargs):
        """
        Args:
            depth_head: called as ``head(features, targets=None, image_size=None)`` ->
                (depth [B, H, W], losses).
            kwargs: see :class:`VPDBaseModel`.
        """
        super().__init__(**kwargs)
        self.depth_head = depth_head

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "depth_head": build_depth_head(cfg, backbone.output_shape()),
            **vpd_base_config(cfg),
        }

    @staticmethod
    def _prompt_inputs(scenes: List[Optional[str]]) -> dict:
        return {"scenes": scenes} if any(s is not None for s in scenes) else {}

    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        d = self.size_divisibility
        return F.pad(images, (0, (-w) % d, 0, (-h) % d), value=self.pad_value)

    def _depth(self, images: torch.Tensor, scene: Optional[str] = None) -> torch.Tensor:
        """[n, 3, h, w] unpadded images of one scene -> [n, 1, h, w] metres."""
        size = images.shape[-2:]
        features = self.backbone(self._pad(images), self._prompt_inputs([scene] * images.shape[0]))
        depth, _ = self.depth_head(features, image_size=size)
        return depth[:, None]

    def _depth_with_flip(self, images: torch.Tensor, scene: Optional[str] = None) -> torch.Tensor:
        """Like :meth:`_depth`; with the flip test, averaged with the un-mirrored prediction on
        the mirrored images (both in one backbone batch)."""
        if not self.flip_test:
            return self._depth(images, scene)
        n = images.shape[0]
        both = self._depth(torch.cat([images, images.flip(-1)]), scene)
        return 0.5 * (both[:n] + both[n:].flip(-1))

    def forward(self, batched_inputs):
        images = self.normalized_images(batched_inputs)
        scenes = [x.get("scene") for x in batched_inputs]
        if self.training:
            if any("depth" not in x for x in batched_inputs):
                raise ValueError("training inputs need 'depth' maps")
            padded = self.padded(images)
            # Padding is "no measurement" (0), so it never enters the loss.
            targets = self.padded([x["depth"].to(self.device).float() for x in batched_inputs], pad_value=0).tensor
            features = self.backbone(padded.tensor, self._prompt_inputs(scenes))
            # Same-size crops (the usual case): the head sees the true image size, as at test time.
            sizes = set(padded.image_sizes)
            if len(sizes) == 1:
                (h, w), = sizes
                targets = targets[..., :h, :w]
            _, losses = self.depth_head(features, targets=targets)
            return losses
        results = []
        for image, scene, inp in zip(images, scenes, batched_inputs):
            if self.test_crop_size:
                depth = sliding_window_inference(
                    lambda w: self._depth_with_flip(w, scene), image, self.test_crop_size, self.test_stride
                )
            else:
                depth = self._depth_with_flip(image[None], scene)[0]
            size = tuple(image.shape[-2:])
            out_size = (inp.get("height", size[0]), inp.get("width", size[1]))
            if out_size != size:
                depth = F.interpolate(depth[None], size=out_size, mode="bilinear", align_corners=False)[0]
            results.append({"depth": depth[0]})
        return results
