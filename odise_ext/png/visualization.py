"""Drawing Panoptic Narrative Grounding results: each phrase's mask in its own colour, and the
caption underneath with every grounded phrase written in that colour."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["phrase_colors", "overlay_phrase_masks", "caption_tokens", "render_caption", "draw_png"]

_TEXT = (40, 40, 40)


def phrase_colors(num: int) -> List[Tuple[int, int, int]]:
    """``num`` well separated, saturated RGB colours (golden-ratio hue steps; deterministic)."""
    import colorsys

    colors = []
    for i in range(num):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.9)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


def overlay_phrase_masks(
    image: np.ndarray, masks: np.ndarray, colors: Sequence[Tuple[int, int, int]], alpha: float = 0.55
) -> np.ndarray:
    """Blend each phrase's mask over the image in its colour.

    Args:
        image: uint8 [H, W, 3] RGB.
        masks: [P, H, W] probabilities in [0, 1] (soft masks are drawn with soft opacity).
        colors: P RGB colours.
        alpha: opacity of a mask where its probability is 1.
    Returns:
        uint8 [H, W, 3]. Later phrases are drawn over earlier ones where masks overlap.
    """
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks {masks.shape} must be [P, H, W] with the image's size {image.shape[:2]}")
    if len(colors) < len(masks):
        raise ValueError(f"{len(masks)} masks but only {len(colors)} colours")
    out = image.astype(np.float32)
    for mask, color in zip(masks, colors):
        weight = alpha * np.clip(mask, 0.0, 1.0)[..., None]
        out = out * (1.0 - weight) + np.asarray(color, np.float32) * weight
    return out.round().astype(np.uint8)


def _segments(caption: str, spans: Sequence[Tuple[int, int]]):
    """Caption pieces as (text, phrase index or None), in order."""
    pieces, cursor = [], 0
    for i, (start, end) in enumerate(spans):
        if not (cursor <= start <= end <= len(caption)):
            raise ValueError(f"phrase character spans must be sorted, non-overlapping and inside the caption: {spans}")
        if start > cursor:
            pieces.append((caption[cursor:start], None))
        pieces.append((caption[start:end], i))
        cursor = end
    if cursor < len(caption):
        pieces.append((caption[cursor:], None))
    return pieces


def caption_tokens(caption: str, spans: Sequence[Tuple[int, int]]) -> List[Tuple[str, Optional[int], bool]]:
    """The caption's words as (text, phrase index or None, glued): ``glued`` when the word follows
    the previous one without whitespace (punctuation after a phrase, e.g. "sand" ",")."""
    tokens, prev_end = [], None
    for text, index in _segments(caption, spans):
        pos = 0
        for token in text.replace("\n", " ").split(" "):
            if token:
                tokens.append((token, index, pos == 0 and prev_end is not None and bool(tokens)))
            pos += len(token) + 1
        prev_end = text[-1:]
        if text.endswith((" ", "\n")):  # the next piece starts after whitespace
            prev_end = None
    return tokens


def render_caption(
    caption: str,
    spans: Sequence[Tuple[int, int]],
    colors: Sequence[Tuple[int, int, int]],
    width: int,
    font_size: int = 14,
    margin: int = 6,
) -> np.ndarray:
    """The caption, word-wrapped to ``width`` pixels, phrase i in ``colors[i]`` (the rest grey).

    Returns:
        uint8 [h, width, 3] on white.
    """
    font = ImageFont.load_default(size=font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = font_size + 4
    # Lay out word by word so that a phrase keeps its colour across line breaks.
    words = [(token, colors[index] if index is not None else _TEXT, glued)
             for token, index, glued in caption_tokens(caption, spans)]
    placed, x, y = [], margin, margin
    space = probe.textlength(" ", font=font)
    for token, color, glued in words:
        length = probe.textlength(token, font=font)
        if glued and placed:  # "sand," : no space between a phrase and the punctuation after it
            x -= space
        elif x > margin and x + length > width - margin:
            x, y = margin, y + line_height
        placed.append((x, y, token, color))
        x += length + space
    canvas = Image.new("RGB", (width, y + line_height + margin), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for x, y, token, color in placed:
        draw.text((x, y), token, fill=color, font=font)
    return np.asarray(canvas)


def draw_png(
    image: np.ndarray,
    caption: str,
    spans: Sequence[Tuple[int, int]],
    masks: np.ndarray,
    alpha: float = 0.55,
    font_size: int = 14,
) -> np.ndarray:
    """Image with every phrase's mask in its colour, above the colour-coded caption.

    Args:
        image: uint8 [H, W, 3] RGB.
        caption: the narrative.
        spans: P character spans [start, end) of the grounded phrases in ``caption``.
        masks: [P, H, W] probabilities in [0, 1], one per phrase (same order as ``spans``).
    Returns:
        uint8 [H + caption height, W, 3].
    """
    if len(spans) != len(masks):
        raise ValueError(f"{len(masks)} masks for {len(spans)} phrases")
    colors = phrase_colors(len(spans))
    top = overlay_phrase_masks(image, masks, colors, alpha)
    bottom = render_caption(caption, spans, colors, image.shape[1], font_size=font_size)
    return np.concatenate([top, bottom], 0)
