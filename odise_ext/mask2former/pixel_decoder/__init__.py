"""Pixel decoders of mask-classification heads (multi-scale deformable attention)."""

from .ms_deform_attn import MSDeformAttn, ms_deform_attn, ms_deform_attn_core_pytorch
from .msdeformattn import PIXEL_DECODER_REGISTRY, MSDeformAttnPixelDecoder, build_pixel_decoder

__all__ = [
    "MSDeformAttn",
    "ms_deform_attn",
    "ms_deform_attn_core_pytorch",
    "PIXEL_DECODER_REGISTRY",
    "MSDeformAttnPixelDecoder",
    "build_pixel_decoder",
]
