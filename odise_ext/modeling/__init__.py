"""Models of odise-ext. Importing this package registers every component in its registry."""
from . import backbone, clip, prompts  # noqa: F401  (registration side effects)
from . import pixel_decoder, transformer_decoder  # noqa: F401
from . import open_vocab  # noqa: F401  (OpenVocabClassHead)
from . import heads, losses  # noqa: F401  (VPD / Meta-Prompts heads)
from . import png, vpd  # noqa: F401  (PNG / VPD prompt modules and backbones)
from . import meta_arch  # noqa: F401
from .frozen import FrozenModule, freeze

__all__ = ["FrozenModule", "freeze"]
