# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/meta_arch/mask_former_head.py
"""Mask2Former's segmentation head: pixel decoder + masked-attention transformer decoder.

Names follow Mask2Former (``sem_seg_head.pixel_decoder``, ``sem_seg_head.predictor``) so that
checkpoints of Mask2Former-style models map by name.
"""
from typing import Dict

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

from .pixel_decoder import build_pixel_decoder
from .transformer_decoder import build_transformer_decoder

__all__ = ["MaskFormerHead"]


class MaskFormerHead(nn.Module):
    @configurable
    def __init__(self, *, pixel_decoder: nn.Module, predictor: nn.Module):
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec], class_head=None):
        in_features = cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES
        shapes = {k: v for k, v in input_shape.items() if k in in_features}
        missing = [k for k in in_features if k not in input_shape]
        if missing:
            raise ValueError(f"MODEL.SEM_SEG_HEAD.IN_FEATURES names {missing}, but the backbone gives {sorted(input_shape)}")
        return {
            "pixel_decoder": build_pixel_decoder(cfg, shapes),
            "predictor": build_transformer_decoder(cfg, cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM, mask_classification=True, class_head=class_head),
        }

    @property
    def class_head(self) -> nn.Module:
        """The transformer decoder's class head (``predictor.class_embed``)."""
        return self.predictor.class_embed

    def forward(self, features, *, class_inputs=None):
        """features: dict name -> [B, C, H, W]; class_inputs: extra keyword arguments of the
        decoder's class head (e.g. ODISE's vocabulary embedding), or None.

        Returns the decoder's prediction dict plus ``mask_features`` [B, mask_dim, H/4, W/4]
        (ODISE's caption loss pools them under each mask).
        """
        mask_features, multi_scale = self.pixel_decoder(features)
        outputs = self.predictor(multi_scale, mask_features, class_inputs=class_inputs)
        outputs["mask_features"] = mask_features
        return outputs
