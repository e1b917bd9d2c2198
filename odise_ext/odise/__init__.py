"""ODISE: open-vocabulary panoptic segmentation on a frozen diffusion UNet (config keys,
open-vocabulary class heads, the implicit captioner, the meta-architecture, the LSJ mapper and
the released-checkpoint converter), and its evaluator and demo entries (``hooks``). Importing
registers them."""
from . import config  # noqa: F401  (MODEL.ODISE, MODEL.CLIP keys)
from . import backbone, clip  # noqa: F401  (WindowedDiffusionBackbone)
from . import open_vocab  # noqa: F401  (OpenVocabClassHead)
from . import hooks  # noqa: F401  (evaluators of the panoptic datasets, demo entry)
from .dataset_mapper import PanopticLSJMapper
from .implicit_captioner import ImplicitCaptioner
from .meta_arch import ODISE

__all__ = ["ImplicitCaptioner", "ODISE", "PanopticLSJMapper"]
