"""Mask2Former pieces shared by the mask-classification models (ODISE, and any task that
classifies masks): pixel decoder, query decoder, criterion, matcher, point sampling,
post-processing and the ``MaskFormerHead`` registered in ``SEM_SEG_HEADS_REGISTRY``."""
from . import pixel_decoder, transformer_decoder  # noqa: F401  (registration side effects)
from .mask_former_head import MaskFormerHead

__all__ = ["MaskFormerHead"]
