"""Text labels on drawings that stay inside the image and never cover each other.

:func:`place_labels` is pure geometry (tested on its own); :func:`draw_labels` draws the placed
boxes with PIL. Labels are placed in the order given (put the most important first): each is
centred on its anchor and moved inside the image; a label that would overlap one already placed
is stacked below it (then above it) and skipped when no free place is found nearby.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Box", "place_labels", "boxes_overlap", "label_font", "draw_labels"]

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def boxes_overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(x0: float, y0: float, w: int, h: int, width: int, height: int) -> Box:
    x0 = int(round(min(max(x0, 0), max(width - w, 0))))
    y0 = int(round(min(max(y0, 0), max(height - h, 0))))
    return (x0, y0, x0 + w, y0 + h)


def place_labels(
    anchors: Sequence[Tuple[float, float]], sizes: Sequence[Tuple[int, int]], width: int, height: int,
    max_shift: int = 3,
) -> List[Optional[Box]]:
    """Boxes for labels of ``sizes[i] = (w, h)`` centred near ``anchors[i] = (x, y)``.

    Returns one box per label, or ``None`` for a label that is skipped (larger than the image,
    or no free place within ``max_shift`` label heights of its anchor). Every returned box lies
    within ``[0, width) x [0, height)`` and no two returned boxes overlap.
    """
    placed: List[Box] = []
    out: List[Optional[Box]] = []
    for (ax, ay), (w, h) in zip(anchors, sizes):
        box = None
        if w <= width and h <= height:
            for step in [0] + [s for k in range(1, max_shift + 1) for s in (k, -k)]:
                cand = _inside(ax - w / 2, ay - h / 2 + step * h, w, h, width, height)
                if not any(boxes_overlap(cand, p) for p in placed):
                    box = cand
                    break
        if box is not None:
            placed.append(box)
        out.append(box)
    return out


def label_font(image_long_side: int) -> ImageFont.ImageFont:
    """PIL's default font at a size readable on an image of this long side (>= 12 px)."""
    return ImageFont.load_default(size=max(12, image_long_side // 32))


def draw_labels(
    image: np.ndarray, texts: Sequence[str], anchors: Sequence[Tuple[float, float]],
    colors: Sequence[Tuple[int, int, int]], pad: int = 2,
) -> np.ndarray:
    """uint8 [H, W, 3] with each text in a box of its colour (black or white text, whichever
    reads better), placed by :func:`place_labels`; labels without room are left out."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = label_font(max(image.shape[:2]))
    sizes = []
    for text in texts:
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        sizes.append((x1 - x0 + 2 * pad, y1 - y0 + 2 * pad))
    boxes = place_labels(anchors, sizes, image.shape[1], image.shape[0])
    for text, box, color in zip(texts, boxes, colors):
        if box is None:
            continue
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=tuple(color))
        ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 140 else (255, 255, 255)
        left, top = draw.textbbox((0, 0), text, font=font)[:2]
        draw.text((box[0] + pad - left, box[1] + pad - top), text, fill=ink, font=font)
    return np.asarray(canvas)
