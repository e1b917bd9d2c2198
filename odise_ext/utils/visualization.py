"""Drawing panoptic and semantic results for any vocabulary, and helpers shared by the other
drawing modules: enlarging small images for display (drawings are at least
:data:`DISPLAY_LONG_SIDE` pixels on the long side), labels that stay inside the image and do
not overlap (:mod:`.labels`), headed panels."""
from typing import Sequence, Tuple

import numpy as np
import torch
from detectron2.data import Metadata
from PIL import Image, ImageDraw

from .labels import draw_labels, label_font

__all__ = ["DISPLAY_LONG_SIDE", "class_palette", "distinct_colors", "vocabulary_metadata", "display_factor",
           "enlarge_image", "enlarge_map", "draw_regions", "draw_panoptic", "side_by_side", "with_heading", "headed_panels"]

# Drawings of smaller images are enlarged by a whole factor to reach this long side.
DISPLAY_LONG_SIDE = 512


def class_palette(num):
    """``num`` fixed pseudo-random RGB colours (the same for the same ``num``)."""
    rng = np.random.RandomState(0)
    return [tuple(int(c) for c in rng.randint(40, 255, size=3)) for _ in range(num)]


def distinct_colors(num):
    """``num`` well separated, saturated RGB colours (golden-ratio hue steps; deterministic)."""
    import colorsys

    hues = [(i * 0.618033988749895) % 1.0 for i in range(num)]
    return [tuple(int(c * 255) for c in colorsys.hsv_to_rgb(h, 0.85, 0.9)) for h in hues]


def vocabulary_metadata(names, colors=None):
    """Visualizer metadata for contiguous class ids 0..K-1 (things and stuff share the ids)."""
    names = list(names)
    if colors is None:
        colors = class_palette(len(names))
    # thing_classes and stuff_classes both index by contiguous id, so either lookup works.
    return Metadata(name="odise_ext_vocabulary", thing_classes=names, stuff_classes=names,
                    thing_colors=list(colors), stuff_colors=list(colors))


def display_factor(height: int, width: int, long_side: int = DISPLAY_LONG_SIDE) -> int:
    """The whole factor (>= 1) that brings an image's long side to at least ``long_side``."""
    return max(1, -(-long_side // max(height, width, 1)))


def enlarge_image(rgb: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [factor H, factor W, 3], bilinear (photographs)."""
    if factor == 1:
        return rgb
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w * factor, h * factor), Image.BILINEAR))


def enlarge_map(labels: np.ndarray, factor: int) -> np.ndarray:
    """[H, W] (or [H, W, C]) label / mask array -> each pixel repeated factor x factor (nearest)."""
    return labels if factor == 1 else labels.repeat(factor, axis=0).repeat(factor, axis=1)


def _label_anchor(mask: np.ndarray) -> Tuple[float, float]:
    """A point inside the region: its pixel nearest to the region's centroid."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return float(xs[i]), float(ys[i])


def draw_regions(
    image_rgb: np.ndarray, region_map: np.ndarray, regions: Sequence[Tuple[int, str, Sequence[int]]],
    alpha: float = 0.5,
) -> np.ndarray:
    """Each region blended in its colour with a dark outline and its name as a label.

    Args:
        image_rgb: uint8 [H, W, 3].
        region_map: int [H, W]; region ``rid`` covers ``region_map == rid``.
        regions: ``(rid, name, (r, g, b))`` per region to draw; labels of larger regions are
            placed first (a label without room is left out, never drawn over another).
    Returns:
        uint8 [H, W, 3].
    """
    out = image_rgb.astype(np.float32)
    edge = np.zeros(region_map.shape, bool)
    edge[1:] |= region_map[1:] != region_map[:-1]
    edge[:, 1:] |= region_map[:, 1:] != region_map[:, :-1]
    labels = []
    for rid, name, color in regions:
        mask = region_map == rid
        if not mask.any():
            continue
        out[mask] = out[mask] * (1 - alpha) + np.asarray(color, np.float32) * alpha
        labels.append((int(mask.sum()), name, _label_anchor(mask), tuple(int(c) for c in color)))
    out[edge] *= 0.35
    labels.sort(key=lambda x: -x[0])
    return draw_labels(out.round().astype(np.uint8), [t for _, t, _, _ in labels], [a for _, _, a, _ in labels],
                       [c for _, _, _, c in labels])


def draw_panoptic(image_rgb, panoptic_seg, segments_info, metadata, long_side: int = DISPLAY_LONG_SIDE):
    """image_rgb: uint8 [H, W, 3]; panoptic_seg: int tensor or array [H, W] (a model's output or
    a ground-truth id map); segments_info: ``id``, ``category_id`` (contiguous), ``isthing``.
    Returns uint8 [f H, f W, 3], enlarged by :func:`display_factor` (ids: nearest). Labels: the
    class name (things numbered when a class has several)."""
    seg = panoptic_seg.cpu().numpy() if torch.is_tensor(panoptic_seg) else np.asarray(panoptic_seg)
    factor = display_factor(*seg.shape, long_side=long_side)
    names = metadata.stuff_classes
    colors = metadata.get("stuff_colors", None) or class_palette(len(names))
    counts = {}
    for s in segments_info:
        counts[s["category_id"]] = counts.get(s["category_id"], 0) + 1
    seen, regions = {}, []
    for s in segments_info:
        c = s["category_id"]
        name = names[c].split(",")[0] if c < len(names) else f"class {c}"
        if s.get("isthing", False) and counts[c] > 1:
            seen[c] = seen.get(c, 0) + 1
            name = f"{name} {seen[c]}"
        regions.append((s["id"], name, colors[c % len(colors)]))
    return draw_regions(enlarge_image(np.asarray(image_rgb), factor), enlarge_map(seg, factor), regions)


def side_by_side(*images, gap=4):
    """Concatenate uint8 images of equal height horizontally with a white gap."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] != h:
            pad = np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)
            im = np.concatenate([im, pad], 0)
        parts.append(im)
        if i < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, 1)


def with_heading(image: np.ndarray, text: str) -> np.ndarray:
    """uint8 [H, W, 3] with a white band above it holding ``text``, centred."""
    font = label_font(max(image.shape[:2]))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
    band = Image.new("RGB", (image.shape[1], (y1 - y0) + 12), (255, 255, 255))
    ImageDraw.Draw(band).text(((image.shape[1] - (x1 - x0)) / 2 - x0, 6 - y0), text, fill=(30, 30, 30), font=font)
    return np.concatenate([np.asarray(band), image], 0)


def headed_panels(panels: Sequence[Tuple[np.ndarray, str]], gap: int = 4) -> np.ndarray:
    """Images side by side, each under its heading (e.g. image | ground truth | prediction)."""
    return side_by_side(*(with_heading(im, text) for im, text in panels), gap=gap)
