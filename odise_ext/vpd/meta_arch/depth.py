"""Monocular depth estimation with a diffusion backbone: VPD and Meta-Prompts.

Backbone (``VPDBackbone``; Meta-Prompts variant by config: meta prompts, refinement loops and
re-arrangement with ``UPSAMPLE 1``) -> VPD depth decoder (``MODEL.VPD.DEPTH``) with SiLog loss.
Test: whole image or sliding windows, optional flip averaging; the prediction is resized
(bilinear) to the ground truth's resolution.
"""
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ..heads import build_depth_head
from .. import backbone as _vpd_backbone  # noqa: F401  (registers the VPD backbones)
from .base import VPDBaseModel, vpd_base_config

__all__ = ["VPDDepthEstimator"]


@META_ARCH_REGISTRY.register()
class VPDDepthEstimator(VPDBaseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), optional ``height``/``width`` (output
    size) and, in training, ``depth`` [H, W] float metres (0 = no measurement).
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

    def _depth(self, images):
        """[n, 3, H, W] padded -> [n, 1, H, W] metres."""
        depth, _ = self.depth_head(self.backbone(images), image_size=images.shape[-2:])
        return depth[:, None]

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        if self.training:
            if any("depth" not in x for x in batched_inputs):
                raise ValueError("training inputs need 'depth' maps")
            padded = self.padded(images)
            # Padding is "no measurement" (0), so it never enters the loss.
            targets = self.padded([x["depth"].to(self.device).float() for x in batched_inputs]).tensor
            _, losses = self.depth_head(self.backbone(padded.tensor), targets=targets)
            return losses
        results = []
        for image, depth, inp in zip(images, self.dense_inference(images, self._depth), batched_inputs):
            size = tuple(image.shape[-2:])
            out_size = (inp.get("height", size[0]), inp.get("width", size[1]))
            if out_size != size:
                depth = F.interpolate(depth[None], size=out_size, mode="bilinear", align_corners=False)[0]
            results.append({"depth": depth[0]})
        return results
