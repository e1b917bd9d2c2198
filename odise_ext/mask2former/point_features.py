"""Point-sampling helpers of the mask losses and the matcher that detectron2's PointRend lacks.

Bilinear point sampling and PointRend importance sampling come from detectron2
(``detectron2.projects.point_rend.point_features``: ``point_sample``,
``get_uncertain_point_coords_with_randomness``), as in Mask2Former. Point coordinates are
normalised to [0, 1] x [0, 1] in (x, y) order over the *whole* map, so a point addresses the same
image location in maps of different resolution (stride-4 predictions and full-resolution targets).
"""

import torch

__all__ = ["pixel_center_coords", "calculate_uncertainty"]


def pixel_center_coords(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised centres of every pixel of an ``height`` x ``width`` map, row-major.

    Sampling a map of that size at these points (``align_corners=False``) returns it exactly,
    which gives the dense, sampling-free variant of the point losses.

    Returns:
        [H * W, 2] (x, y) in (0, 1).
    """
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits: ``-|logit|`` (highest at the 0.5 boundary),
    Mask2Former's choice for its point losses.

    Args:
        logits: [N, 1, ...].
    Returns:
        same shape.
    """
    if logits.shape[1] != 1:
        raise ValueError(f"expected class-agnostic logits [N, 1, ...], got {tuple(logits.shape)}")
    return -torch.abs(logits)
