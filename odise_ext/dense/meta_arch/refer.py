"""Referring segmentation with a diffusion backbone (VPD).

Backbone: ``VPDBackbone`` with ``SentencePrompt`` — the frozen CLIP token features of the
sentence, through the text adapter, are the UNet's cross-attention context, and the attention
maps over the tokens are concatenated to the stride-16/32 features. Decoder: the LAVT-style
``MODEL.REFER_HEAD`` head (VPD's ``SimpleDecoding``), which sees the sentence only through those
features. Loss: 2-class weighted cross-entropy.
Inference: the foreground probability at the input's original size.
"""
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ..heads import build_refer_decoder
from .base import DenseModel, dense_model_config

__all__ = ["DenseReferSegmentor"]


@META_ARCH_REGISTRY.register()
class DenseReferSegmentor(DenseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), ``sentence`` (str), optional
    ``height``/``width`` (output size) and, in training, ``ref_mask`` [H, W] 0/1.
    Outputs (inference): ``{"ref_mask": [height, width] foreground probability}`` per input.
    """

    @staticmethod
    def test_augmentation(cfg):
        """The test mapper's resize (the fixed ``DATA.REFER.SIZE``; none when empty),
        which predictors apply instead of ``DefaultPredictor``'s shortest-edge resize."""
        size = cfg.DATA.REFER.SIZE
        return T.Resize(tuple(size)) if size else None

    @configurable
    def __init__(self, *, refer_decoder: nn.Module, **kwargs):
        """
        Args:
            refer_decoder: ``decoder(features, targets=, image_size=)``
                -> (logits [B, 2, H, W], losses).
            kwargs: see :class:`DenseModel` (the backbone's prompt must take ``sentences``).
        """
        super().__init__(**kwargs)
        self.refer_decoder = refer_decoder

    @classmethod
    def from_config(cls, cfg):
        # Another prompt would ignore the sentences: a model blind to what it must segment.
        if cfg.MODEL.DIFFUSION.PROMPT.NAME != "SentencePrompt":
            raise ValueError(
                "DenseReferSegmentor conditions the UNet on the sentence: set MODEL.DIFFUSION.PROMPT.NAME "
                f"'SentencePrompt', got {cfg.MODEL.DIFFUSION.PROMPT.NAME!r}"
            )
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "refer_decoder": build_refer_decoder(cfg, backbone.output_shape()),
            **dense_model_config(cfg),
        }

    def forward(self, batched_inputs):
        for x in batched_inputs:
            if not isinstance(x.get("sentence"), str):
                raise ValueError("every input needs a 'sentence' string")
        images = self.padded(self.preprocess_image(batched_inputs))
        features = self.backbone(images.tensor, {"sentences": [x["sentence"] for x in batched_inputs]})
        if self.training:
            if any("ref_mask" not in x for x in batched_inputs):
                raise ValueError("training inputs need 'ref_mask'")
            targets = self.padded([x["ref_mask"].to(self.device) for x in batched_inputs], pad_value=0).tensor
            _, losses = self.refer_decoder(features, targets=targets)
            return losses
        logits, _ = self.refer_decoder(features, image_size=images.tensor.shape[-2:])
        results = []
        for logit, (h, w), inp in zip(logits, images.image_sizes, batched_inputs):
            logit = logit[:, :h, :w]
            size = (inp.get("height", h), inp.get("width", w))
            if size != (h, w):
                logit = F.interpolate(logit[None], size=size, mode="bilinear", align_corners=False)[0]
            results.append({"ref_mask": logit.softmax(dim=0)[1]})
        return results
