"""Panoptic Narrative Grounding on a frozen diffusion UNet: phrase features, dynamic prompting
(EIPA), the diffusion mask head, MLMA, the meta-architecture ``PNGDiffusion``, its dataset mapper,
evaluator and drawing code. Importing registers ``DynamicPhrasePrompt`` in ``PROMPT_REGISTRY``,
``PNGDiffusion`` in ``META_ARCH_REGISTRY`` and ``PNGDatasetMapper``.
"""
from . import config  # noqa: F401  (DATA.PNG, MODEL.PNG keys)
from . import hooks  # noqa: F401  (the "png" evaluator entry)
from .dataset_mapper import PNGDatasetMapper
from .diffusion_mask_head import DiffusionMaskHead, phrase_cross_entropy, phrase_distribution
from .dynamic_prompt import DynamicPhrasePrompt, PhrasePromptState
from .eipa import AdapterOutput, PhraseAdapter, unet_block_layout
from .meta_arch import PNGDiffusion
from .mlma import MultiLevelMutualAggregation
from .phrase_features import PhraseEncoder, average_spans, chunk_caption

__all__ = [
    "AdapterOutput",
    "DiffusionMaskHead",
    "DynamicPhrasePrompt",
    "MultiLevelMutualAggregation",
    "PNGDatasetMapper",
    "PNGDiffusion",
    "PhraseAdapter",
    "PhraseEncoder",
    "PhrasePromptState",
    "average_spans",
    "chunk_caption",
    "phrase_cross_entropy",
    "phrase_distribution",
    "unet_block_layout",
]
