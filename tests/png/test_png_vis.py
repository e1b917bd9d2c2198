"""PNG visualiser: every phrase's mask is drawn in the colour its words have in the caption."""
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from odise_ext.png.visualization import draw_png, overlay_phrase_masks, phrase_colors, render_caption

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTION = "in this picture we can see a red circle on the grass and a square"
PHRASES = ["a red circle", "the grass", "a square"]


def _spans(caption, phrases):
    spans, cursor = [], 0
    for p in phrases:
        start = caption.index(p, cursor)
        spans.append((start, start + len(p)))
        cursor = start + len(p)
    return spans


def _masks(h, w):
    masks = np.zeros((3, h, w), np.float32)
    masks[0, 4:20, 4:20] = 1.0
    masks[1, 30:, :] = 1.0
    masks[2, 4:12, 40:60] = 1.0
    return masks


def _text_colors(strip):
    colors, counts = np.unique(strip.reshape(-1, 3), axis=0, return_counts=True)
    return {tuple(int(v) for v in c): n for c, n in zip(colors, counts)}


def test_colors_are_distinct_and_deterministic():
    colors = phrase_colors(12)
    assert colors == phrase_colors(12)
    assert len(set(colors)) == 12
    assert all(0 <= v <= 255 for c in colors for v in c)


def test_masks_and_caption_share_each_phrase_colour():
    h, w = 48, 64
    image = np.full((h, w, 3), 100, np.uint8)
    masks = _masks(h, w)
    spans = _spans(CAPTION, PHRASES)
    out = draw_png(image, CAPTION, spans, masks, alpha=0.5)
    colors = phrase_colors(3)
    assert out.dtype == np.uint8 and out.shape[1] == w and out.shape[0] > h

    top, strip = out[:h], out[h:]
    for i, color in enumerate(colors):
        only_i = (masks[i] > 0) & (masks.sum(0) == 1)
        expected = np.round(0.5 * 100 + 0.5 * np.asarray(color, np.float32))
        assert only_i.any()
        assert (top[only_i] == expected).all(), f"phrase {i}'s mask is not drawn in its colour"
    assert (top[masks.sum(0) == 0] == 100).all()  # uncovered pixels keep the image

    # the caption strip uses exactly the phrase colours (plus the grey of the other words)
    # for the glyph cores; antialiased edges blend towards white
    present = _text_colors(strip)
    for color in colors:
        assert present.get(color, 0) > 5, f"no caption text in {color}"
    assert present.get((40, 40, 40), 0) > 5


def test_caption_colours_follow_the_phrase_words():
    spans = _spans(CAPTION, PHRASES)
    colors = [(255, 0, 0), (0, 160, 0), (0, 0, 255)]
    full = render_caption(CAPTION, spans, colors, 400)
    # the same caption without the last phrase grounded: blue disappears, the rest is unchanged
    partial = render_caption(CAPTION, spans[:2], colors[:2], 400)
    assert _text_colors(full).get((0, 0, 255), 0) > 0
    assert _text_colors(partial).get((0, 0, 255), 0) == 0
    assert full.shape == partial.shape


def test_soft_masks_and_bad_arguments():
    image = np.zeros((4, 4, 3), np.uint8)
    soft = np.full((1, 4, 4), 0.5, np.float32)
    out = overlay_phrase_masks(image, soft, [(200, 100, 0)], alpha=1.0)
    assert (out == np.array([100, 50, 0])).all()
    with pytest.raises(ValueError, match="must be \\[P, H, W\\]"):
        overlay_phrase_masks(image, np.zeros((1, 3, 4)), [(0, 0, 0)])
    with pytest.raises(ValueError, match="masks for"):
        draw_png(image, "a b", [(0, 1)], np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="sorted, non-overlapping"):
        render_caption("a b c", [(2, 3), (0, 1)], [(0, 0, 0)] * 2, 100)


def test_visualize_png_tool_writes_panels(shapes_root, tmp_path):
    spec = importlib.util.spec_from_file_location("visualize_png", os.path.join(ROOT, "tools", "visualize_png.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    written = tool.main([
        "--config-file", os.path.join(ROOT, "configs", "testing", "png_tiny.yaml"),
        "--dataset", "png_shapes_val", "--num", "2", "--output", str(tmp_path),
    ])
    assert len(written) == 2
    for path in written:
        assert path.endswith(".png") and os.path.dirname(path) == str(tmp_path)
        panel = np.asarray(Image.open(path).convert("RGB"))
        # ground truth | prediction, each the (128 px, upscaled to 512) image above its caption,
        # under its heading
        assert panel.shape[1] == 2 * 512 + 4 and panel.shape[0] > 512 + 20 + 10
        assert (panel[:10] == 255).all(axis=2).mean() > 0.8  # the white heading band on top


def test_punctuation_after_a_phrase_is_glued_to_it():
    from odise_ext.png.visualization import caption_tokens

    text = "the sand, a square."
    tokens = caption_tokens(text, [(4, 8), (10, 18)])
    assert tokens == [("the", None, False), ("sand", 0, False), (",", None, True), ("a", 1, False),
                      ("square", 1, False), (".", None, True)]
    assert caption_tokens("a b c", [(2, 3)]) == [("a", None, False), ("b", 0, False), ("c", None, False)]
    # the glued comma sits closer to "sand" than a word would: the rendering is narrower
    glued = render_caption(text, [(4, 8), (10, 18)], [(255, 0, 0)] * 2, 400)
    spaced = render_caption("the sand , a square .", [(4, 8), (11, 19)], [(255, 0, 0)] * 2, 400)
    ink = lambda im: np.nonzero((im.min(axis=2) < 200).any(axis=0))[0].max()  # noqa: E731
    assert ink(glued) < ink(spaced)
