"""Task-generic dense prediction on any backbone: semantic segmentation, monocular depth, referring
segmentation and top-down pose — meta-architectures, heads, losses, dataset mappers, evaluators,
sliding-window test, predictor, drawing, and their evaluator / demo entries (``hooks``).

VPD and Meta-Prompts contribute backbones and prompt modules (``odise_ext.vpd``,
``odise_ext.metaprompts``); these models take whichever backbone ``MODEL.BACKBONE.NAME`` builds.
Importing this package registers the meta-architectures, heads and mappers.
"""
from . import config  # noqa: F401  (dense heads', test-time and dataset-input keys)
from . import heads, losses, mappers, meta_arch  # noqa: F401  (registration side effects)
from . import hooks  # noqa: F401  (evaluator, predictor and demo entries)
from .predictor import DensePredictor
from .sliding_window import sliding_window_inference, sliding_windows

__all__ = ["DensePredictor", "sliding_window_inference", "sliding_windows"]
