"""Drawing the outputs of the VPD / Meta-Prompts tasks (used by ``tools/demo.py``).

Every function takes the input image as uint8 RGB [H, W, 3] and one model output at that image's
resolution, and returns a uint8 RGB drawing enlarged by a whole factor ``f`` to at least
``DISPLAY_LONG_SIDE`` (512) pixels on the long side (``f = 1`` for large images; label maps and
masks enlarged nearest-neighbour), [f H, f W, 3] unless said otherwise:

- :func:`draw_sem_seg`: ``sem_seg`` logits [K, H, W] (or labels [H, W]) over the image, class
  names written on the regions (labels inside the image, never overlapping);
- :func:`draw_depth`: ``depth`` [H, W] metres as a colour-mapped map (near bright, far dark) above
  one colour bar with the metric range, [f H + bar, f W, 3];
- :func:`draw_ref_mask`: ``ref_mask`` [H, W] foreground probability as a coloured overlay, the
  sentence written in the top-left corner;
- :func:`draw_keypoints`: ``instances`` with ``pred_boxes`` / ``pred_keypoints`` [M, K, 3]: each
  box labelled "person i", its keypoints as dots joined by the metadata's
  ``keypoint_connection_rules``.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.data import Metadata

from PIL import Image, ImageDraw

from .depth_vis import colorize_depth, depth_colorbar
from ..utils.labels import draw_labels
from ..utils.visualization import (
    class_palette, display_factor, distinct_colors, draw_regions, enlarge_image, enlarge_map,
)

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
        uint8 [f H, f W, 3].
    """
    image_rgb = _check_image(image_rgb)
    seg = _numpy(sem_seg)
    labels = seg.argmax(axis=0) if seg.ndim == 3 else seg
    if labels.ndim != 2:
        raise ValueError(f"sem_seg must be [K, H, W] scores or [H, W] labels, got {seg.shape}")
    _check_size("sem_seg", labels.shape, image_rgb)
    names = metadata.get("stuff_classes", None) or []
    if seg.ndim == 3 and seg.shape[0] > len(names):
        raise ValueError(f"sem_seg has {seg.shape[0]} classes but the metadata names {len(names)}")
    colors = metadata.get("stuff_colors", None) or class_palette(len(names))
    present = [int(c) for c in np.unique(labels) if 0 <= c < len(names)]
    regions = [(c, names[c].split(",")[0], colors[c]) for c in present]
    f = display_factor(*labels.shape)
    return draw_regions(enlarge_image(image_rgb, f), enlarge_map(labels.astype(np.int64), f), regions, alpha=alpha)


def draw_depth(image_rgb: np.ndarray, depth, cmap: str = "magma_r") -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3] (only its size is used).
        depth: [H, W] metres.
    Returns:
        uint8 [f H + bar, f W, 3]: the depth coloured on this image's range of positive depths
        (near bright with "magma_r"), above one colour bar labelled with that range in metres.
    """
    image_rgb = _check_image(image_rgb)
    depth = _numpy(depth).astype(np.float64)
    _check_size("depth", depth.shape, image_rgb)
    ok = np.isfinite(depth) & (depth > 0)
    lo, hi = (float(depth[ok].min()), float(depth[ok].max())) if ok.any() else (0.0, 0.0)
    f = display_factor(*depth.shape)
    colored = enlarge_map(colorize_depth(depth, vmin=lo, vmax=hi, cmap=cmap), f)
    return np.concatenate([colored, depth_colorbar(lo, hi, colored.shape[1], cmap=cmap)], 0)


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
        uint8 [f H, f W, 3].
    """
    image_rgb = _check_image(image_rgb)
    prob = _numpy(ref_mask)
    _check_size("ref_mask", prob.shape, image_rgb)
    mask = prob if prob.dtype == bool else prob > threshold
    f = display_factor(*mask.shape)
    big, mask = enlarge_image(image_rgb, f).astype(np.float32), enlarge_map(mask, f)
    rgb = tuple(int(round(255 * c)) for c in color)
    big[mask] = big[mask] * 0.5 + np.asarray(rgb, np.float32) * 0.5
    out = big.round().astype(np.uint8)
    if sentence:  # a label box whose left edge is at the left border, at the top
        out = draw_labels(out, [sentence], [(0.0, 0.0)], [rgb])
    return out


def draw_keypoints(
    image_rgb: np.ndarray, instances, metadata: Metadata, keypoint_threshold: float = 0.05
) -> np.ndarray:
    """
    Args:
        image_rgb: uint8 [H, W, 3].
        instances: detectron2 ``Instances`` with ``pred_boxes``, ``pred_keypoints`` [M, K, 3]
            (x, y, score) and optionally ``scores``.
        metadata: ``keypoint_names`` and ``keypoint_connection_rules`` (optional; the lines).
        keypoint_threshold: keypoints with a lower score are not drawn.
    Returns:
        uint8 [f H, f W, 3]: boxes labelled "person 1", "person 2", ... and their keypoints.
    """
    image_rgb = _check_image(image_rgb)
    if not instances.has("pred_keypoints"):
        raise ValueError("instances have no pred_keypoints")
    _check_size("instances", instances.image_size, image_rgb)
    f = display_factor(*image_rgb.shape[:2])
    canvas = Image.fromarray(enlarge_image(image_rgb, f))
    draw = ImageDraw.Draw(canvas)
    boxes = _numpy(instances.pred_boxes.tensor) * f if instances.has("pred_boxes") else np.zeros((0, 4))
    keypoints = _numpy(instances.pred_keypoints).astype(np.float64)
    keypoints[..., :2] = (keypoints[..., :2] + 0.5) * f - 0.5  # pixel centres stay centres
    names = list(metadata.get("keypoint_names", None) or [])
    rules = metadata.get("keypoint_connection_rules", None) or []
    colors = distinct_colors(max(len(keypoints), 1))
    r = max(2, f + 1)
    for person, color in zip(keypoints, colors):
        shown = person[:, 2] >= keypoint_threshold
        for a, b, line_color in rules:
            if a in names and b in names and shown[names.index(a)] and shown[names.index(b)]:
                pa, pb = person[names.index(a), :2], person[names.index(b), :2]
                draw.line([tuple(pa), tuple(pb)], fill=tuple(int(c) for c in line_color), width=max(1, f))
        for x, y, _ in person[shown]:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
    for box, color in zip(boxes, colors):
        draw.rectangle(tuple(float(v) for v in box), outline=color, width=max(1, f // 2 + 1))
    out = np.asarray(canvas)
    labels = [f"person {i + 1}" for i in range(len(boxes))]
    return draw_labels(out, labels, [(float(b[0]), float(b[1])) for b in boxes], colors)
