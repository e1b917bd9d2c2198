"""VPD / Meta-Prompts dataset mappers; importing registers each in ``DATASET_MAPPER_REGISTRY``."""
from .depth import DepthMapper
from .keypoints import TopDownKeypointMapper
from .refer import ReferMapper
from .semseg import SemSegMapper, SemSegSlideTestMapper

__all__ = ["DepthMapper", "TopDownKeypointMapper", "ReferMapper", "SemSegMapper", "SemSegSlideTestMapper"]
