"""Sliding-window dense inference (mmseg's ``slide`` test mode, used by VPD / Meta-Prompts).

Windows of size (ch, cw) start every (sh, sw) pixels; along each axis the last window is shifted
back to end at the image border, so every window lies inside the image (an image smaller than
the window is one window of the image's size). All windows of an image run as one batch, and the
predictions are averaged where windows overlap.

:func:`shift_windows` gives the windows of VPD / Meta-Prompts' depth "shift-window" test instead:
n square windows of the image's height at x = i * ((W - H) // (n - 1)).
"""
from typing import Callable, List, Sequence, Tuple

import torch

__all__ = ["sliding_windows", "shift_windows", "sliding_window_inference"]

Box = Tuple[int, int, int, int]  # y1, y2, x1, x2 (end exclusive)


def _spans(length: int, crop: int, stride: int) -> List[Tuple[int, int]]:
    crop = min(crop, length)
    count = max(length - crop + stride - 1, 0) // stride + 1
    spans = []
    for i in range(count):
        end = min(i * stride + crop, length)
        spans.append((max(end - crop, 0), end))
    return spans


def sliding_windows(height: int, width: int, crop: Sequence[int], stride: Sequence[int]) -> List[Box]:
    """Window boxes covering an image of ``height`` x ``width``, row-major."""
    if len(crop) != 2 or len(stride) != 2 or min(crop) <= 0 or min(stride) <= 0:
        raise ValueError(f"sliding window crop {list(crop)} and stride {list(stride)} must be two positive ints")
    if stride[0] > crop[0] or stride[1] > crop[1]:
        raise ValueError(f"sliding window stride {list(stride)} larger than the crop {list(crop)} leaves gaps")
    return [
        (y1, y2, x1, x2)
        for (y1, y2) in _spans(height, crop[0], stride[0])
        for (x1, x2) in _spans(width, crop[1], stride[1])
    ]


def shift_windows(height: int, width: int, count: int) -> List[Box]:
    """``count`` (>= 2) windows of ``height`` x ``height`` at x = i * ((width - height) // (count - 1)).

    When ``width - height`` is not a multiple of ``count - 1`` the last columns are covered by no
    window (:func:`sliding_window_inference` then repeats the last covered column there).
    """
    if count < 2 or width <= height:
        raise ValueError(f"shift windows need count >= 2 and a landscape image, got {count} for {height}x{width}")
    step = (width - height) // (count - 1)
    return [(0, height, i * step, i * step + height) for i in range(count)]


def sliding_window_inference(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    crop: Sequence[int] = (),
    stride: Sequence[int] = (),
    boxes: Sequence[Box] = (),
) -> torch.Tensor:
    """
    Args:
        predict: maps windows [n, C_in, h, w] to dense predictions [n, K, h, w].
        image: [C_in, H, W].
        crop, stride: window size and step (h, w), or
        boxes: explicit windows (e.g. :func:`shift_windows`), all of one size.
    Returns:
        [K, H, W], the mean of the overlapping window predictions.
    """
    height, width = image.shape[-2:]
    boxes = list(boxes) or sliding_windows(height, width, crop, stride)
    windows = torch.stack([image[:, y1:y2, x1:x2] for (y1, y2, x1, x2) in boxes])
    preds = predict(windows)
    if preds.shape[0] != len(boxes) or tuple(preds.shape[-2:]) != tuple(windows.shape[-2:]):
        raise RuntimeError(
            f"window predictions {tuple(preds.shape)} do not match the windows {tuple(windows.shape)}"
        )
    out = preds.new_zeros(preds.shape[1], height, width)
    count = preds.new_zeros(1, height, width)
    for pred, (y1, y2, x1, x2) in zip(preds, boxes):
        out[:, y1:y2, x1:x2] += pred
        count[:, y1:y2, x1:x2] += 1
    end = max(x2 for (_, _, _, x2) in boxes)
    if end < width:
        # Only shift windows leave a gap (trailing columns): repeat the last covered column.
        out[..., end:] = out[..., end - 1 : end]
        count[..., end:] = count[..., end - 1 : end]
    return out / count
