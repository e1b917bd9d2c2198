"""VPD / Meta-Prompts meta-architectures (one per task), registered in ``META_ARCH_REGISTRY``."""
from .depth import DenseDepthEstimator
from .pose import DensePoseEstimator
from .refer import DenseReferSegmentor
from .semseg import DenseSemanticSegmentor

__all__ = ["DenseDepthEstimator", "DensePoseEstimator", "DenseReferSegmentor", "DenseSemanticSegmentor"]
