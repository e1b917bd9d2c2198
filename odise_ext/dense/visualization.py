"""Drawing the outputs of the VPD / Meta-Prompts tasks (used by ``tools/demo.py``).

Every function takes the input image as uint8 RGB [H, W, 3] and one model output at that image's
resolution, and returns a uint8 RGB [H, W, 3] drawing of the same size:

- :func:`draw_sem_seg`: ``sem_seg`` logits [K, H, W] (or labels [H, W]) over the image, with
  detectron2's ``Visualizer`` (class names written on the regions);
- :func:`draw_depth`: ``depth`` [H, W] metres as a colour-mapped map (near bright, far dark);
- :func:`draw_ref_mask`: ``ref_mask`` [H, W] foreground probability as a coloured overlay, the
  sentence written in the top-left corner;
- :func:`draw_keypoints`: ``instances`` with ``pred_boxes`` / ``pred_keypoints`` [M, K, 3]
  (boxes, skeleton from the metadata's ``keypoint_connection_rules``).

detectron2's ``Visualizer`` needs OpenCV; it is imported only by the functions that use it.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.data import Metadata

from .depth_vis import colorize_depth
from ..utils.visualization import class_palette

__all__ = ["semantic_metadata", "draw_sem_seg", "draw_depth", "draw_ref_mask", "draw_keypoints"]


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}")
    return image_rgb


def _check_size(name: str, shape: Sequence[int], image_rgb: np.ndarray) -> None:
    if tuple(shape) != tuple(image_rgb.shape[:2]):
        raise ValueError(f"{name} of size {tuple(shape)} does not match the image {tuple(image_rgb.shape[:2])}")


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def semantic_metadata(names: Sequence[str], colors: Optional[Sequence] = None) -> Metadata:
    """Visualizer metadata for K semantic classes (ids 0..K-1); colours default to a fixed
    pseudo-random palette."""
    names = list(names)
    if not names:
        raise ValueError("semantic_metadata: no class names")
    if colors is None:
        colors = class_palette(len(names))
    if len(colors) != len(names):
        raise ValueError(f"{len(colors)} colours for {len(names)} classes")
    return Metadata(name="odise_ext_semantic", stuff_classes=names, stuff_colors=[list(c) for c in colors])


def draw_sem_seg(image_rgb: np.ndarray, sem_seg, metadata: Metadata, alpha: float = 0.6) -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3].
        sem_seg: [K, H, W] scores (argmax is drawn) or [H, W] integer labels.
        metadata: with ``stuff_classes`` (K names) and optionally ``stuff_colors``.
    Returns:
        uint8 [H, W, 3].
    """
    from detectron2.utils.visualizer import Visualizer

    image_rgb = _check_image(image_rgb)
    seg = _numpy(sem_seg)
    labels = seg.argmax(axis=0) if seg.ndim == 3 else seg
    if labels.ndim != 2:
        raise ValueError(f"sem_seg must be [K, H, W] scores or [H, W] labels, got {seg.shape}")
    _check_size("sem_seg", labels.shape, image_rgb)
    names = metadata.get("stuff_classes", None) or []
    if seg.ndim == 3 and seg.shape[0] > len(names):
        raise ValueError(f"sem_seg has {seg.shape[0]} classes but the metadata names {len(names)}")
    vis = Visualizer(image_rgb, metadata)
    return vis.draw_sem_seg(labels.astype(np.int64), alpha=alpha).get_image()


def draw_depth(image_rgb: np.ndarray, depth, cmap: str = "magma_r") -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3] (only its size is used).
        depth: [H, W] metres.
    Returns:
        uint8 [H, W, 3]: the depth coloured on this image's range (near bright with "magma_r").
    """
    image_rgb = _check_image(image_rgb)
    depth = _numpy(depth)
    _check_size("depth", depth.shape, image_rgb)
    return colorize_depth(depth, cmap=cmap)


def draw_ref_mask(
    image_rgb: np.ndarray, ref_mask, sentence: str = "", threshold: float = 0.5, color=(0.1, 0.9, 0.2)
) -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3].
        ref_mask: [H, W] foreground probability (or bool mask); > ``threshold`` is drawn.
        sentence: the referring expression, written in the top-left corner.
        color: RGB in [0, 1] of the overlay.
    Returns:
        uint8 [H, W, 3].
    """
    from detectron2.utils.visualizer import Visualizer

    image_rgb = _check_image(image_rgb)
    prob = _numpy(ref_mask)
    _check_size("ref_mask", prob.shape, image_rgb)
    mask = prob if prob.dtype == bool else prob > threshold
    vis = Visualizer(image_rgb, Metadata(name="odise_ext_refer"))
    if mask.any():
        vis.draw_binary_mask(mask.astype(np.uint8), color=color, alpha=0.5)
    if sentence:
        vis.draw_text(sentence, (2, 2), horizontal_alignment="left", color=color)
    return vis.output.get_image()


def draw_keypoints(image_rgb: np.ndarray, instances, metadata: Metadata, keypoint_threshold: float = 0.05) -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3].
        instances: detectron2 ``Instances`` with ``pred_boxes``, ``pred_keypoints`` [M, K, 3]
            (x, y, score) and optionally ``scores`` / ``pred_classes``.
        metadata: ``thing_classes``, ``keypoint_names``, ``keypoint_connection_rules`` (optional).
        keypoint_threshold: keypoints with a lower score are not drawn.
    Returns:
        uint8 [H, W, 3].
    """
    from detectron2.utils.visualizer import Visualizer

    image_rgb = _check_image(image_rgb)
    if not instances.has("pred_keypoints"):
        raise ValueError("instances have no pred_keypoints")
    _check_size("instances", instances.image_size, image_rgb)
    vis = Visualizer(image_rgb, metadata)
    vis.keypoint_threshold = keypoint_threshold
    return vis.draw_instance_predictions(instances.to("cpu")).get_image()
