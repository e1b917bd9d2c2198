"""Task heads of VPD / Meta-Prompts: depth, semantic segmentation (UPerNet), referring
segmentation and pose. Importing this package registers them.

VPD's Semantic-FPN head is :class:`FPNHead` (mmseg's ``FPNHead``: detectron2's
``SemSegFPNHead`` plus mmseg's dropout, classifier init and loss averaging; ``COMMON_STRIDE = 8``).
"""
from .build import HEAD_REGISTRY, build_depth_head, build_pose_head, build_refer_decoder
from .depth_head import VPDDepthHead
from .fpn_head import FPNHead
from .pose_head import TopDownHeatmapHead, decode_heatmaps, flip_heatmaps, flip_test_average
from .refer_decoder import LAVTReferDecoder
from .uper_head import UPerHead

__all__ = [
    "HEAD_REGISTRY",
    "build_depth_head",
    "build_refer_decoder",
    "build_pose_head",
    "VPDDepthHead",
    "UPerHead",
    "FPNHead",
    "LAVTReferDecoder",
    "TopDownHeatmapHead",
    "decode_heatmaps",
    "flip_heatmaps",
    "flip_test_average",
]
