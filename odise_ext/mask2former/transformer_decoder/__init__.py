"""Mask2Former query decoders and their pluggable class heads."""

from .class_head import CLASS_HEAD_REGISTRY, LinearClassHead, build_class_head
from .mask2former_decoder import (
    TRANSFORMER_DECODER_REGISTRY,
    MultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
)
from .position_encoding import PositionEmbeddingSine

__all__ = [
    "CLASS_HEAD_REGISTRY",
    "LinearClassHead",
    "build_class_head",
    "TRANSFORMER_DECODER_REGISTRY",
    "MultiScaleMaskedTransformerDecoder",
    "build_transformer_decoder",
    "PositionEmbeddingSine",
]
