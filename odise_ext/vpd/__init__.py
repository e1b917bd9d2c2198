"""VPD (Zhao et al., 2023): text prompts for the diffusion UNet — class-name, scene-class and
sentence prompts refined by the text adapter — and the cross-attention maps appended to the
backbone features. The task models that VPD's features feed live in ``odise_ext.dense``.

Importing this package registers the prompt modules (``ClassNamePrompt``, ``SceneClassPrompt``,
``SentencePrompt`` in ``PROMPT_REGISTRY``) and the backbones (``VPDBackbone``,
``build_vpd_fpn_backbone`` in detectron2's ``BACKBONE_REGISTRY``) and VPD's released checkpoint
formats (``release``).
"""
from . import config  # noqa: F401  (MODEL.VPD keys)
from . import release  # noqa: F401  (VPD's released checkpoint formats)
from .adapter import TextAdapter
from .attention import attention_channels, average_attention_by_stride
from .backbone import VPDBackbone, build_vpd_fpn_backbone
from .prompts import ClassNamePrompt, SceneClassPrompt, SentencePrompt, resolve_class_names
from .text import encode_pooled_text, encode_text_tokens

__all__ = [
    "TextAdapter",
    "attention_channels",
    "average_attention_by_stride",
    "VPDBackbone",
    "build_vpd_fpn_backbone",
    "ClassNamePrompt",
    "SceneClassPrompt",
    "SentencePrompt",
    "resolve_class_names",
    "encode_pooled_text",
    "encode_text_tokens",
]
