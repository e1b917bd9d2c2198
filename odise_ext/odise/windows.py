"""ODISE's sliding windows, batched.

An [H, W] image is covered by square windows of side s = min(size, H, W); along each axis the
i-th window starts at i*s, ends at min(i*s + s, L) and is shifted back to start at
max(end - s, 0), so the last window fits inside the image. All images of a padded batch share
the same boxes, so the windows of a whole batch are cut into one tensor and run in one call.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F

__all__ = ["window_boxes", "cut_windows", "merge_windows"]

Box = Tuple[int, int, int, int]  # (y1, y2, x1, x2), pixels, end exclusive


def _starts(length: int, side: int) -> List[Tuple[int, int]]:
    spans = []
    for i in range(math.ceil(length / side)):
        end = min(i * side + side, length)
        spans.append((max(end - side, 0), end))
    return spans


def window_boxes(height: int, width: int, size: int) -> List[Box]:
    """Window boxes (y1, y2, x1, x2) in row-major order; all of side min(size, height, width)."""
    if height <= 0 or width <= 0 or size <= 0:
        raise ValueError(f"Invalid window geometry: image {height}x{width}, window {size}.")
    side = min(size, height, width)
    rows, cols = _starts(height, side), _starts(width, side)
    return [(y1, y2, x1, x2) for (y1, y2) in rows for (x1, x2) in cols]


def cut_windows(images: torch.Tensor, boxes: List[Box], size: int) -> torch.Tensor:
    """Crop every box of every image and resize to ``size`` x ``size``.

    Args:
        images: [B, C, H, W].
        boxes: K boxes from :func:`window_boxes`.
        size: output side; resizing is bicubic (a = -0.75), align_corners=False, no antialias
            and no clamping (ODISE's ``F.interpolate`` call).
    Returns:
        [B * K, C, size, size], image-major (window k of image b at index b * K + k).
    """
    crops = torch.stack([images[:, :, y1:y2, x1:x2] for (y1, y2, x1, x2) in boxes], dim=1)
    crops = crops.flatten(0, 1)
    if crops.shape[-2:] != (size, size):
        crops = F.interpolate(crops, size=(size, size), mode="bicubic", align_corners=False)
    return crops


def merge_windows(
    features: torch.Tensor, boxes: List[Box], stride: int, image_size: Tuple[int, int]
) -> torch.Tensor:
    """Paste per-window feature maps into full maps, averaging where windows overlap.

    Args:
        features: [B * K, C, s / stride, s / stride] in the order of :func:`cut_windows`.
        boxes: the K boxes (pixels).
        stride: feature stride; every box coordinate must be divisible by it.
        image_size: (H, W) of the (padded) images.
    Returns:
        [B, C, H / stride, W / stride].
    """
    k = len(boxes)
    if features.shape[0] % k:
        raise ValueError(f"{features.shape[0]} window features are not a multiple of {k} boxes.")
    height, width = image_size
    if height % stride or width % stride or any(c % stride for box in boxes for c in box):
        raise ValueError(
            f"Image size {height}x{width} and windows {boxes} must be divisible by stride {stride}."
        )
    feats = features.unflatten(0, (-1, k))  # [B, K, C, h, w]
    out = feats.new_zeros(feats.shape[0], feats.shape[2], height // stride, width // stride)
    count = feats.new_zeros(1, 1, height // stride, width // stride)
    for i, (y1, y2, x1, x2) in enumerate(boxes):
        rows, cols = slice(y1 // stride, y2 // stride), slice(x1 // stride, x2 // stride)
        region = (slice(None), slice(None), rows, cols)
        if feats.shape[-2:] != out[region].shape[-2:]:
            raise ValueError(
                f"Window {i} features are {tuple(feats.shape[-2:])}, expected "
                f"{tuple(out[region].shape[-2:])} at stride {stride}."
            )
        out[region] += feats[:, i]
        count[region] += 1
    return out / count
