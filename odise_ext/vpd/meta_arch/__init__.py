"""VPD / Meta-Prompts meta-architectures (one per task), registered in ``META_ARCH_REGISTRY``."""
from .depth import VPDDepthEstimator
from .pose import VPDPoseEstimator
from .refer import VPDReferSegmentor
from .semseg import VPDSemanticSegmentor

__all__ = ["VPDDepthEstimator", "VPDPoseEstimator", "VPDReferSegmentor", "VPDSemanticSegmentor"]
