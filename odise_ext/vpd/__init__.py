"""VPD / Meta-Prompts on top of the shared diffusion feature extractor: config keys, prompt
modules, backbones, task heads and losses, meta-architectures, dataset mappers, evaluators,
predictor and drawing code.

Importing this package registers the prompt modules (``ClassNamePrompt``, ``SentencePrompt``,
``MetaPrompts`` in ``PROMPT_REGISTRY``), the backbones (``VPDBackbone``,
``build_vpd_fpn_backbone`` in detectron2's ``BACKBONE_REGISTRY``), the heads, the four
meta-architectures and the four dataset mappers.
"""
from . import dataset_mappers, heads, losses, meta_arch  # noqa: F401  (registration side effects)
from . import hooks  # noqa: F401  (evaluator, predictor and demo entries)
from .adapter import TextAdapter
from .attention import attention_channels, average_attention_by_stride
from .backbone import VPDBackbone, build_vpd_fpn_backbone
from .extractor import UNET_MODES, Extraction, VPDFeatureExtractor
from .prompts import ClassNamePrompt, MetaPrompts, SceneClassPrompt, SentencePrompt, SentenceTokens, resolve_class_names
from .rearrange import PromptRearrangement
from .step_prompts import StepContexts, StepMetaPrompts
from .sliding_window import sliding_window_inference, sliding_windows
from .text import encode_pooled_text, encode_text_tokens
from .tuned import RecordingCheckpoint, TunedModule

__all__ = [
    "TextAdapter",
    "attention_channels",
    "average_attention_by_stride",
    "VPDBackbone",
    "build_vpd_fpn_backbone",
    "UNET_MODES",
    "Extraction",
    "VPDFeatureExtractor",
    "ClassNamePrompt",
    "MetaPrompts",
    "SceneClassPrompt",
    "SentencePrompt",
    "SentenceTokens",
    "resolve_class_names",
    "PromptRearrangement",
    "StepContexts",
    "StepMetaPrompts",
    "sliding_window_inference",
    "sliding_windows",
    "encode_pooled_text",
    "encode_text_tokens",
    "RecordingCheckpoint",
    "TunedModule",
]
