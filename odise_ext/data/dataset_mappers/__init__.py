"""Dataset mappers; importing registers each in ``DATASET_MAPPER_REGISTRY``."""
from .panoptic_lsj import PanopticLSJMapper
from .vpd_depth import VPDDepthMapper
from .vpd_keypoints import VPDKeypointMapper
from .vpd_refer import VPDReferMapper
from .vpd_semseg import VPDSemSegMapper

__all__ = ["PanopticLSJMapper", "VPDDepthMapper", "VPDKeypointMapper", "VPDReferMapper", "VPDSemSegMapper"]
