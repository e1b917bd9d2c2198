"""Semantic segmentation with a diffusion backbone: VPD and Meta-Prompts.

One meta-architecture, the variant chosen by config:

- VPD: ``MODEL.BACKBONE.NAME = "build_vpd_fpn_backbone"`` (VPDBackbone with class-name prompts
  and attention features + detectron2's FPN neck) and ``FPNHead`` (mmseg's FPNHead);
- Meta-Prompts: ``MODEL.BACKBONE.NAME = "VPDBackbone"`` with ``MetaPrompts``, recurrent
  refinement and re-arrangement, and the ``UPerHead`` (CE + Lovász + auxiliary FCN head).

Both heads follow detectron2's sem-seg head interface (``(None, losses)`` in training, logits at
input resolution in inference). Test: whole image or sliding windows (``TEST.DENSE``).
"""
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone, build_sem_seg_head
from detectron2.modeling.postprocessing import sem_seg_postprocess
from torch import nn

from .. import heads as _heads  # noqa: F401  (registers UPerHead)
from .base import DenseModel, dense_model_config

__all__ = ["DenseSemanticSegmentor"]


@META_ARCH_REGISTRY.register()
class DenseSemanticSegmentor(DenseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), optional ``height``/``width`` (output
    size) and, in training, ``sem_seg`` [H, W] int64 labels (``ignore_value`` = unlabeled).
    Outputs (inference): ``{"sem_seg": [K, height, width] logits}`` per image.
    """

    @configurable
    def __init__(self, *, sem_seg_head: nn.Module, ignore_value: int, **kwargs):
        """
        Args:
            sem_seg_head: detectron2-style semantic segmentation head.
            ignore_value: label of unlabeled pixels (also the padding value of the targets).
            kwargs: see :class:`DenseModel`.
        """
        super().__init__(**kwargs)
        self.sem_seg_head = sem_seg_head
        self.ignore_value = ignore_value

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, backbone.output_shape()),
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            **dense_model_config(cfg),
        }

    def _logits(self, images):
        """[n, 3, H, W] padded -> [n, K, H, W] logits."""
        logits, _ = self.sem_seg_head(self.backbone(images))
        return logits

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        if self.training:
            if any("sem_seg" not in x for x in batched_inputs):
                raise ValueError("training inputs need 'sem_seg' label maps")
            padded = self.padded(images)
            targets = self.padded(
                [x["sem_seg"].to(self.device) for x in batched_inputs], pad_value=self.ignore_value
            ).tensor
            _, losses = self.sem_seg_head(self.backbone(padded.tensor), targets)
            return losses
        results = []
        for image, logits, inp in zip(images, self.dense_inference(images, self._logits), batched_inputs):
            size = tuple(image.shape[-2:])
            height, width = inp.get("height", size[0]), inp.get("width", size[1])
            results.append({"sem_seg": sem_seg_postprocess(logits, size, height, width)})
        return results
