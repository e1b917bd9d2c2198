"""Panoptic Narrative Grounding on a frozen diffusion UNet: phrase features, dynamic prompting
(EIPA), the diffusion mask head and MLMA. Importing registers ``DynamicPhrasePrompt`` in
``PROMPT_REGISTRY``; the meta-architecture is ``odise_ext.modeling.meta_arch.png.PNGDiffusion``.
"""
from .diffusion_mask_head import DiffusionMaskHead, phrase_cross_entropy, phrase_distribution
from .dynamic_prompt import DynamicPhrasePrompt, PhrasePromptTrace
from .eipa import AdapterOutput, PhraseAdapter, unet_block_layout
from .mlma import MultiLevelMutualAggregation
from .phrase_features import PhraseEncoder, average_spans, chunk_caption

__all__ = [
    "AdapterOutput",
    "DiffusionMaskHead",
    "DynamicPhrasePrompt",
    "MultiLevelMutualAggregation",
    "PhraseAdapter",
    "PhraseEncoder",
    "PhrasePromptTrace",
    "average_spans",
    "chunk_caption",
    "phrase_cross_entropy",
    "phrase_distribution",
    "unet_block_layout",
]
