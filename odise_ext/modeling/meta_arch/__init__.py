from .mask_former_head import MaskFormerHead
from .odise import ODISE

__all__ = ["MaskFormerHead", "ODISE"]
