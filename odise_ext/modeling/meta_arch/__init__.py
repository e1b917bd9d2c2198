from .mask_former_head import MaskFormerHead
from .odise import ODISE
from .png import PNGDiffusion
from .vpd_depth import VPDDepthEstimator
from .vpd_pose import VPDPoseEstimator
from .vpd_refer import VPDReferSegmentor
from .vpd_semseg import VPDSemanticSegmentor

__all__ = [
    "MaskFormerHead",
    "ODISE",
    "PNGDiffusion",
    "VPDDepthEstimator",
    "VPDPoseEstimator",
    "VPDReferSegmentor",
    "VPDSemanticSegmentor",
]
