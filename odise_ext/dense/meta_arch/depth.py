"""Monocular depth estimation with a diffusion backbone: VPD and Meta-Prompts.

Backbone (``VPDBackbone``: VPD's scene-class prompt, or Meta-Prompts' per-step meta prompts and
refinement loops) -> depth head (``MODEL.DEPTH_HEAD``: ``VPDDepthHead`` or ``MetaPromptsDepthHead``)
with SiLog loss.

Every prediction pads its (same-size) images bottom/right to the backbone's size divisibility with
0.5 (0 after VPD's x2-1) — or resizes them by ``MODEL.DEPTH_HEAD.RESIZE_SCALE``
(Meta-Prompts) — and tells the head the image size (so that it can crop its fused map
and predict at the image size) and the prompts the UNet saw (the last refinement step's;
``MetaPromptsDepthHead`` reads them, VPD's head ignores them). Every depth head has the same call.
Test: whole image or sliding windows; with the flip
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
from ..sliding_window import shift_windows, sliding_window_inference
from .base import DenseModel, dense_model_config

__all__ = ["DenseDepthEstimator"]


@META_ARCH_REGISTRY.register()
class DenseDepthEstimator(DenseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), optional ``height``/``width`` (output
    size), optional ``scene`` (scene class name) and, in training, ``depth`` [H, W] float metres
    (0 = no measurement).
    Outputs (inference): ``{"depth": [height, width] metres}`` per image.
    """

    @configurable
    def __init__(self, *, depth_head: nn.Module, resize_scale: int = -1, shift_windows: int = 0, **kwargs):
        """
        Args:
            depth_head: called as ``head(features, prompts, image_size, canvas_size,
                targets=None)`` -> (depth [B, h, w], losses); ``prompts`` [B, N, D] the context
                the UNet saw, ``canvas_size`` the size the backbone saw (see
                ``MetaPromptsDepthHead.rearranged``).
            resize_scale: -1 pads the images to the size divisibility d; k >= 0 resizes them to
                ((h // d + k) * d, (w // d + k) * d) before the backbone.
            shift_windows: n >= 2 tests with n shift windows (:func:`shift_windows`) instead of
                the sliding windows of ``test_crop_size`` / ``test_stride``; 0 = off.
            kwargs: see :class:`DenseModel`.
        """
        super().__init__(**kwargs)
        self.depth_head = depth_head
        if resize_scale < -1:
            raise ValueError(f"MODEL.DEPTH_HEAD.RESIZE_SCALE must be >= -1, got {resize_scale}")
        self.resize_scale = int(resize_scale)
        if shift_windows == 1 or shift_windows < 0 or (shift_windows and self.test_crop_size):
            raise ValueError(
                f"TEST.DENSE.SHIFT_WINDOWS={shift_windows}: use 0 or n >= 2, with TEST.CROP_SIZE / STRIDE []"
            )
        self.shift_windows = int(shift_windows)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "depth_head": build_depth_head(cfg, backbone.output_shape(), prompt=backbone.prompt),
            "resize_scale": cfg.MODEL.DEPTH_HEAD.RESIZE_SCALE,
            "shift_windows": cfg.TEST.DENSE.SHIFT_WINDOWS,
            **dense_model_config(cfg),
        }

    @staticmethod
    def _prompt_inputs(scenes: List[Optional[str]]) -> dict:
        return {"scenes": scenes} if any(s is not None for s in scenes) else {}

    def _run(self, images: torch.Tensor, scenes: List[Optional[str]], targets=None):
        """[n, 3, h, w] same-size unpadded images -> (depth [n, h, w], losses)."""
        size = tuple(images.shape[-2:])
        if self.resize_scale >= 0:
            d = self.size_divisibility
            resized = tuple((s // d + self.resize_scale) * d for s in size)
            x = F.interpolate(images, size=resized, mode="bilinear", align_corners=False)
            canvas = size  # the resized input shows the whole image
        else:
            x = self._pad(images)
            canvas = tuple(x.shape[-2:])
        features = self.backbone(x, self._prompt_inputs(scenes))
        return self.depth_head(features, features.prompt.context, size, canvas, targets=targets)

    def _depth(self, images: torch.Tensor, scene: Optional[str] = None) -> torch.Tensor:
        """[n, 3, h, w] unpadded images of one scene -> [n, 1, h, w] metres."""
        depth, _ = self._run(images, [scene] * images.shape[0])
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
        images = self.preprocess_image(batched_inputs)
        scenes = [x.get("scene") for x in batched_inputs]
        if self.training:
            if any("depth" not in x for x in batched_inputs):
                raise ValueError("training inputs need 'depth' maps")
            depths = [x["depth"].to(self.device).float() for x in batched_inputs]
            if len({tuple(x.shape[-2:]) for x in images}) == 1:
                # Same-size crops (the usual case): predicted exactly as at test time.
                _, losses = self._run(torch.stack(images), scenes, targets=torch.stack(depths))
                return losses
            if self.resize_scale >= 0:
                raise ValueError("this depth model trains on same-size crops (DATA.DEPTH.CROP_SIZE)")
            padded = self.padded(images)
            # Padding is "no measurement" (0), so it never enters the loss.
            targets = self.padded(depths, pad_value=0).tensor
            features = self.backbone(padded.tensor, self._prompt_inputs(scenes))
            size = tuple(targets.shape[-2:])
            _, losses = self.depth_head(features, features.prompt.context, size, size, targets=targets)
            return losses
        results = []
        for image, scene, inp in zip(images, scenes, batched_inputs):
            predict = lambda w: self._depth_with_flip(w, scene)  # noqa: E731
            if self.shift_windows:
                boxes = shift_windows(*image.shape[-2:], self.shift_windows)
                depth = sliding_window_inference(predict, image, boxes=boxes)
            elif self.test_crop_size:
                depth = sliding_window_inference(predict, image, self.test_crop_size, self.test_stride)
            else:
                depth = self._depth_with_flip(image[None], scene)[0]
            size = tuple(image.shape[-2:])
            out_size = (inp.get("height", size[0]), inp.get("width", size[1]))
            if out_size != size:
                depth = F.interpolate(depth[None], size=out_size, mode="bilinear", align_corners=False)[0]
            results.append({"depth": depth[0]})
        return results
