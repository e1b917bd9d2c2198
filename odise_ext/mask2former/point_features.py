"""Point sampling for mask losses and matching (PointRend-style importance sampling).

Point coordinates are normalised to [0, 1] x [0, 1] in (x, y) order over the *whole* map, so a
point addresses the same image location in maps of different resolution (stride-4 predictions
and full-resolution targets).
"""

from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = [
    "point_sample",
    "pixel_center_coords",
    "calculate_uncertainty",
    "get_uncertain_point_coords_with_randomness",
]


def point_sample(input: torch.Tensor, point_coords: torch.Tensor, **kwargs) -> torch.Tensor:
    """Bilinearly sample ``input`` at normalised points (zero outside the map).

    Args:
        input: [N, C, H, W].
        point_coords: [N, P, 2] or [N, Hg, Wg, 2], (x, y) in [0, 1].
        kwargs: passed to ``F.grid_sample`` (default ``align_corners=False``, i.e. pixel
            centres sit at (i + 0.5) / size).
    Returns:
        [N, C, P] or [N, C, Hg, Wg].
    """
    if input.dim() != 4:
        raise ValueError(f"point_sample expects input [N, C, H, W], got {tuple(input.shape)}")
    if point_coords.shape[-1] != 2 or point_coords.dim() not in (3, 4):
        raise ValueError(f"point_coords must be [N, P, 2] or [N, H, W, 2], got {tuple(point_coords.shape)}")
    kwargs.setdefault("align_corners", False)
    add_dim = point_coords.dim() == 3
    grid = 2.0 * point_coords - 1.0
    if add_dim:
        grid = grid.unsqueeze(2)
    output = F.grid_sample(input, grid.to(input.dtype), **kwargs)
    return output.squeeze(3) if add_dim else output


def pixel_center_coords(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised centres of every pixel of an ``height`` x ``width`` map, row-major.

    Sampling a map of that size at these points returns it exactly (``align_corners=False``),
    which gives the dense, sampling-free variant of the point losses.

    Returns:
        [H * W, 2] (x, y) in (0, 1).
    """
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits: ``-|logit|`` (highest at the 0.5 boundary).

    Args:
        logits: [N, 1, ...].
    Returns:
        same shape.
    """
    if logits.shape[1] != 1:
        raise ValueError(f"expected class-agnostic logits [N, 1, ...], got {tuple(logits.shape)}")
    return -torch.abs(logits)


def get_uncertain_point_coords_with_randomness(
    coarse_logits: torch.Tensor,
    uncertainty_func: Callable[[torch.Tensor], torch.Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Choose points per map: the most uncertain of oversampled candidates, plus uniform ones.

    ``int(num_points * oversample_ratio)`` candidates are drawn uniformly; the
    ``int(importance_sample_ratio * num_points)`` most uncertain of them are kept and the rest of
    the ``num_points`` are drawn uniformly again (coverage of confident regions).

    Args:
        coarse_logits: [N, 1, H, W] (or [N, C, H, W] with a matching ``uncertainty_func``).
        uncertainty_func: [N, C, P] logits -> [N, 1, P] uncertainty.
        generator: optional RNG for the uniform draws (candidates first, then the random rest).
    Returns:
        [N, num_points, 2] (x, y) in [0, 1].
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}")
    num_boxes = coarse_logits.shape[0]
    device = coarse_logits.device
    num_sampled = int(num_points * oversample_ratio)
    point_coords = torch.rand(num_boxes, num_sampled, 2, generator=generator, device=device)
    uncertainties = uncertainty_func(point_sample(coarse_logits, point_coords))
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainties[:, 0, :], k=num_uncertain, dim=1).indices
    point_coords = torch.gather(point_coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        random_coords = torch.rand(num_boxes, num_random, 2, generator=generator, device=device)
        point_coords = torch.cat([point_coords, random_coords], dim=1)
    return point_coords
