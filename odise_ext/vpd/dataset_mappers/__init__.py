"""VPD / Meta-Prompts dataset mappers; importing registers each in ``DATASET_MAPPER_REGISTRY``."""
from .depth import VPDDepthMapper
from .keypoints import VPDKeypointMapper
from .refer import VPDReferMapper
from .semseg import VPDSemSegMapper, VPDSemSegTestMapper

__all__ = ["VPDDepthMapper", "VPDKeypointMapper", "VPDReferMapper", "VPDSemSegMapper", "VPDSemSegTestMapper"]
