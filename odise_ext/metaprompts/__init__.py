"""Meta-Prompts (Wan et al., 2023): learnable meta prompts for the diffusion UNet (one set shared by
every refinement step, or one per step), the backbone that re-arranges the features against them,
and Meta-Prompts' depth head. The recurrent refinement itself is a parameter of the shared
diffusion feature extractor; the task models live in ``odise_ext.dense``.

Importing this package registers ``MetaPrompts`` in ``PROMPT_REGISTRY``, ``MetaPromptsBackbone``
in detectron2's ``BACKBONE_REGISTRY``, ``MetaPromptsDepthHead`` in the dense head registry, and
Meta-Prompts' released checkpoint formats (``release``).
"""
from . import config  # noqa: F401  (MODEL.META_PROMPTS keys)
from . import release  # noqa: F401  (Meta-Prompts' released checkpoint formats)
from .backbone import MetaPromptsBackbone
from .depth_head import MetaPromptsDepthHead
from .prompts import MetaPrompts
from .rearrange import PromptRearrangement

__all__ = ["MetaPrompts", "MetaPromptsBackbone", "MetaPromptsDepthHead", "PromptRearrangement"]
