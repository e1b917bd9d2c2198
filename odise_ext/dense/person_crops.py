"""Top-down pose geometry: person boxes -> fixed-size crops, keypoints <-> heatmap coordinates.

Coordinates are detectron2's continuous pixel coordinates (pixel (i, j) covers [j, j+1) x
[i, i+1); dataset keypoints are loaded with +0.5). A box is expanded about its centre to the
crop's aspect ratio, scaled by ``box_scale`` (SimpleBaseline: 1.25) and optionally rotated; the
affine map crop -> image is then::

    [x, y] = R(theta) . s . ([u, v] - [Wc / 2, Hc / 2]) + [cx, cy],   s = box width / Wc

Crops are sampled with ``grid_sample`` (bilinear, zero outside the image). A keypoint at crop
position u lies at heatmap position u / stride - 0.5 (heatmap pixel centres at integers).
"""
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.input_checks import InputError

__all__ = ["CropGeometry", "parse_boxes", "crop_geometry", "crop_images", "image_to_crop", "crop_to_image", "gaussian_heatmaps"]


@dataclass
class CropGeometry:
    """M crops: centre [M, 2] (x, y), scale [M] image pixels per crop pixel, angle [M] radians."""

    center: torch.Tensor
    scale: torch.Tensor
    angle: torch.Tensor


def crop_geometry(
    boxes: torch.Tensor, crop_size: Sequence[int], box_scale: float, scale_factor=None, angle=None
) -> CropGeometry:
    """
    Args:
        boxes: [M, 4] XYXY in image pixels.
        crop_size: (Hc, Wc).
        box_scale: enlargement of the aspect-corrected box.
        scale_factor: optional [M] extra scale (training jitter).
        angle: optional [M] rotation in radians (training).
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [M, 4] XYXY, got {tuple(boxes.shape)}")
    hc, wc = crop_size
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0)
    center = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    # Widen or heighten the box to the crop's aspect ratio, never shrink it.
    width = torch.maximum(w, h * (wc / hc)) * box_scale
    scale = width / wc
    if scale_factor is not None:
        scale = scale * scale_factor
    if angle is None:
        angle = torch.zeros_like(scale)
    return CropGeometry(center, scale, angle)


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [M, 2, 2]


def crop_to_image(points: torch.Tensor, geom: CropGeometry, crop_size: Sequence[int]) -> torch.Tensor:
    """[M, P, 2] crop coordinates -> image coordinates."""
    hc, wc = crop_size
    offset = points.new_tensor([wc / 2.0, hc / 2.0])
    rel = (points - offset) * geom.scale[:, None, None]
    return rel @ _rotation(geom.angle).transpose(1, 2) + geom.center[:, None]


def image_to_crop(points: torch.Tensor, geom: CropGeometry, crop_size: Sequence[int]) -> torch.Tensor:
    """[M, P, 2] image coordinates -> crop coordinates (inverse of :func:`crop_to_image`)."""
    hc, wc = crop_size
    rel = (points - geom.center[:, None]) @ _rotation(geom.angle)  # R^T applied to row vectors
    return rel / geom.scale[:, None, None] + points.new_tensor([wc / 2.0, hc / 2.0])


def crop_images(images: torch.Tensor, image_index: torch.Tensor, geom: CropGeometry, crop_size) -> torch.Tensor:
    """
    Args:
        images: [B, C, H, W].
        image_index: [M] image of each crop.
    Returns:
        [M, C, Hc, Wc] crops (bilinear, zeros outside the image).
    """
    hc, wc = crop_size
    height, width = images.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(hc, device=images.device, dtype=images.dtype) + 0.5,
        torch.arange(wc, device=images.device, dtype=images.dtype) + 0.5,
        indexing="ij",
    )
    pts = torch.stack([u, v], -1).reshape(1, -1, 2).expand(len(image_index), -1, -1)
    xy = crop_to_image(pts, geom, crop_size)
    # align_corners=False: normalised -1 / 1 are the outer edges of the border pixels.
    grid = torch.stack([xy[..., 0] * (2.0 / width) - 1.0, xy[..., 1] * (2.0 / height) - 1.0], -1)
    grid = grid.view(-1, hc, wc, 2)
    return F.grid_sample(images[image_index], grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_heatmaps(points: torch.Tensor, visible: torch.Tensor, size: Sequence[int], sigma: float):
    """Target heatmaps.

    Args:
        points: [M, K, 2] heatmap coordinates (pixel centres at integers).
        visible: [M, K] bool, labelled keypoints.
        size: (h, w) of the heatmaps.
        sigma: Gaussian sigma in heatmap pixels.
    Returns:
        heatmaps [M, K, h, w] (peak 1), weights [M, K] (1 for labelled keypoints inside the map).
    """
    h, w = size
    ys = torch.arange(h, device=points.device, dtype=points.dtype)
    xs = torch.arange(w, device=points.device, dtype=points.dtype)
    dx = xs.view(1, 1, 1, w) - points[..., 0, None, None]
    dy = ys.view(1, 1, h, 1) - points[..., 1, None, None]
    heatmaps = torch.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))
    inside = (points[..., 0] >= -0.5) & (points[..., 0] < w - 0.5) & (points[..., 1] >= -0.5) & (points[..., 1] < h - 0.5)
    weights = (visible & inside).to(points.dtype)
    return heatmaps * weights[..., None, None], weights


def parse_boxes(text: str, width: int, height: int) -> np.ndarray:
    """Person boxes typed as 'x0,y0,x1,y1;...' in image pixels -> [M, 4] float32 XYXY; empty
    text -> one box covering the whole ``width`` x ``height`` image.

    Raises:
        InputError (a ValueError): naming a box that is not four finite numbers, is empty, or lies outside the image.
    """
    parts = [p.strip() for p in (text or "").split(";") if p.strip()]
    if not parts:
        return np.array([[0.0, 0.0, width, height]], dtype=np.float32)
    boxes = []
    for part in parts:
        try:
            box = [float(v) for v in part.split(",")]
        except ValueError:
            raise InputError(f"Box '{part}' is not four comma-separated numbers x0,y0,x1,y1.") from None
        if len(box) != 4 or not np.all(np.isfinite(box)):
            raise InputError(f"Box '{part}' must be four numbers x0,y0,x1,y1.")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise InputError(f"Box '{part}' is empty: it needs x1 > x0 and y1 > y0.")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise InputError(f"Box '{part}' lies outside the {width}x{height} image.")
        boxes.append(box)
    return np.asarray(boxes, dtype=np.float32)
