"""Meta-Prompts (Wan et al., 2023): learnable meta prompts for the diffusion UNet (one set shared by
every refinement step, or one per step), the feature re-arrangement against them, and Meta-Prompts'
depth head. The recurrent refinement itself is a parameter of the shared diffusion feature
extractor; the task models live in ``odise_ext.dense``.

Importing this package registers ``MetaPrompts`` / ``StepMetaPrompts`` in ``PROMPT_REGISTRY`` and
``MetaPromptsDepthHead`` in the dense head registry.
"""
from . import config  # noqa: F401  (MODEL.META_PROMPTS keys)
from .depth_head import MetaPromptsDepthHead
from .prompts import MetaPrompts, StepMetaPrompts
from .rearrange import PromptRearrangement

__all__ = ["MetaPrompts", "MetaPromptsDepthHead", "PromptRearrangement", "StepMetaPrompts"]
