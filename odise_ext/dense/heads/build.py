"""Registry and builders of the VPD / Meta-Prompts task heads (depth, referring, pose).

Semantic segmentation heads go to detectron2's ``SEM_SEG_HEADS_REGISTRY`` instead, so that
``detectron2.modeling.build_sem_seg_head`` chooses between its ``SemSegFPNHead`` and our
``FPNHead`` / ``UPerHead`` by ``MODEL.SEM_SEG_HEAD.NAME``.
"""
from detectron2.utils.registry import Registry

__all__ = ["HEAD_REGISTRY", "build_depth_head", "build_refer_decoder", "build_pose_head"]

HEAD_REGISTRY = Registry("VPD_HEAD")
HEAD_REGISTRY.__doc__ = """
Task heads that turn a dict of backbone feature maps into task outputs. A registered class is
called as ``cls(cfg, input_shape)`` with ``input_shape: Dict[str, ShapeSpec]``.
"""


def build_depth_head(cfg, input_shape, prompt=None):
    """Build ``cfg.MODEL.DEPTH_HEAD.NAME`` for ``input_shape: Dict[str, ShapeSpec]`` and the
    backbone's prompt module ``prompt`` (heads that read the prompts take their widths from it).

    Every depth head is called as ``head(features, prompts, image_size, canvas_size,
    targets=None)`` -> (depth [B, h, w], losses)."""
    return HEAD_REGISTRY.get(cfg.MODEL.DEPTH_HEAD.NAME)(cfg, input_shape, prompt=prompt)


def build_refer_decoder(cfg, input_shape):
    """Build ``cfg.MODEL.REFER_HEAD.NAME`` for ``input_shape: Dict[str, ShapeSpec]``."""
    return HEAD_REGISTRY.get(cfg.MODEL.REFER_HEAD.NAME)(cfg, input_shape)


def build_pose_head(cfg, input_shape):
    """Build ``cfg.MODEL.POSE_HEAD.NAME`` for ``input_shape: Dict[str, ShapeSpec]``."""
    return HEAD_REGISTRY.get(cfg.MODEL.POSE_HEAD.NAME)(cfg, input_shape)
