"""``WindowedDiffusionBackbone``: ODISE's sliding windows around the shared diffusion backbone.

Images are cut into sliding windows of ``MODEL.DIFFUSION.WINDOW_SIZE``, resized to that size, all
windows run through the core in one call, and the per-window projections are pasted back into full
maps (overlaps averaged). Its parameters are the core's, so both load the same checkpoints.
"""
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from ..diffusion.backbone import DiffusionBackbone
from ..diffusion.output import BackboneOutput
from .windows import cut_windows, merge_windows, window_boxes

__all__ = ["WindowedDiffusionBackbone"]


@BACKBONE_REGISTRY.register()
class WindowedDiffusionBackbone(DiffusionBackbone):
    """ODISE's sliding windows around :class:`DiffusionBackbone` (same parameters, same output).

    Windows of side ``min(window_size, H, W)`` cover the image, are resized to ``window_size``,
    run through the core in one call (``image_index`` tells the prompt module which image each
    window shows), and the projected features are merged back (overlaps averaged). The
    ``prompt`` and ``attention`` of the output are per window.
    """

    @configurable
    def __init__(self, *, window_size: int, **kwargs):
        """
        Args:
            window_size: maximum window side, and the side windows are resized to.
            kwargs: see :class:`DiffusionBackbone`.
        """
        super().__init__(**kwargs)
        self.window_size = window_size

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None, clip=None):
        args = super().from_config(cfg, input_shape, clip=clip)
        args["window_size"] = cfg.MODEL.DIFFUSION.WINDOW_SIZE
        return args

    def forward(
        self,
        x: torch.Tensor,
        prompt_inputs: Optional[dict] = None,
        image_index: Optional[torch.Tensor] = None,
    ) -> BackboneOutput:
        """Same contract as :meth:`DiffusionBackbone.forward` (``image_index`` must be None:
        the windows define it)."""
        if image_index is not None:
            raise ValueError(f"{type(self).__name__} cuts its own windows; pass whole images")
        self._check_input(x)
        height, width = x.shape[-2:]
        boxes = window_boxes(height, width, self.window_size)
        side = boxes[0][1] - boxes[0][0]
        windows = cut_windows(x, boxes, self.window_size)
        index = torch.arange(x.shape[0], device=x.device).repeat_interleave(len(boxes))
        ex = self.feature_extractor.extract(windows, index, prompt_inputs)
        per_level = self._project(ex.features, (side, side))
        features = {
            f: merge_windows(per_level[self._out_feature_strides[f]], boxes, self._out_feature_strides[f], (height, width))
            for f in self._out_features
        }
        return BackboneOutput(features, ex.prompt, ex.attention)
