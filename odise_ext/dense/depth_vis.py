"""Colour-mapped depth maps for inspection (uint8 RGB; pixels without depth are black)."""
import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..utils.atomic_io import atomic_save_image
from ..utils.visualization import side_by_side

__all__ = ["colorize_depth", "colorbar_labels", "depth_colorbar", "save_depth_png", "depth_comparison"]


def colorize_depth(depth, valid=None, *, vmin=None, vmax=None, cmap="magma_r"):
    """Map depth to colours.

    Args:
        depth (ndarray or Tensor): [H, W] depth in metres.
        valid (ndarray or Tensor or None): [H, W] bool; defaults to finite depth > 0.
            Pixels outside it (and non-finite or <= 0 depths) are drawn black.
        vmin, vmax (float or None): depth range mapped onto the colormap; each bound left as
            None is taken from this image's valid pixels (per-image range). Depths outside
            the range are clipped.
        cmap (str): matplotlib colormap name ("magma_r": near = bright, far = dark).

    Returns:
        ndarray: [H, W, 3] uint8 RGB.
    """
    if isinstance(depth, torch.Tensor):
        depth = depth.detach().cpu().numpy()
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
    ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        if isinstance(valid, torch.Tensor):
            valid = valid.detach().cpu().numpy()
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != depth.shape:
            raise ValueError(f"valid mask {valid.shape} does not match depth {depth.shape}")
        ok &= valid
    rgb = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not ok.any():
        return rgb
    lo = float(depth[ok].min()) if vmin is None else float(vmin)
    hi = float(depth[ok].max()) if vmax is None else float(vmax)
    if hi < lo:
        raise ValueError(f"depth colour range is empty: vmin={lo} > vmax={hi}")
    # A constant image (hi == lo) maps to the colormap's low end instead of dividing by zero.
    scaled = np.clip((depth[ok] - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    colors = matplotlib.colormaps[cmap](scaled)[:, :3]
    rgb[ok] = np.round(colors * 255.0).astype(np.uint8)
    return rgb


def save_depth_png(path, depth, valid=None, **kwargs):
    """Write :func:`colorize_depth` of ``depth`` to ``path`` as an RGB PNG; kwargs as there."""
    atomic_save_image(Image.fromarray(colorize_depth(depth, valid, **kwargs)), path, format="PNG")


def depth_comparison(pred, gt, valid=None, *, gap=4, cmap="magma_r"):
    """Prediction | ground truth, both coloured on the same [0, max valid ground truth] range.

    Args:
        pred, gt (ndarray or Tensor): [H, W] depths in metres (gt 0 = no measurement).
        valid (ndarray or Tensor or None): [H, W] bool ground-truth pixels to show (default:
            finite gt > 0); the others are black in the ground-truth panel.
        gap (int): width of the white separator in pixels.

    Returns:
        ndarray: [H, 2 W + gap, 3] uint8 RGB.
    """
    gt_np = gt.detach().cpu().numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt, dtype=np.float64)
    ok = np.isfinite(gt_np) & (gt_np > 0)
    if valid is not None:
        ok &= valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid, dtype=bool)
    vmax = float(gt_np[ok].max()) if ok.any() else None
    left = colorize_depth(pred, vmin=0.0 if vmax else None, vmax=vmax, cmap=cmap)
    right = colorize_depth(gt_np, ok, vmin=0.0, vmax=vmax, cmap=cmap)
    if left.shape != right.shape:
        raise ValueError(f"prediction {left.shape[:2]} and ground truth {right.shape[:2]} differ in size")
    return side_by_side(left, right, gap=gap)


def colorbar_labels(lo: float, hi: float):
    """(fraction along the bar, text) of the colour bar's labels: both ends and the middle in
    metres, or one label in the middle when the range rounds to one value (a constant map)."""
    texts = [f"{lo + frac * (hi - lo):.2f} m" for frac in (0.0, 0.5, 1.0)]
    if len(set(texts)) == 1:
        return [(0.5, f"constant depth {texts[0]}")]
    return list(zip((0.0, 0.5, 1.0), texts))


def depth_colorbar(lo: float, hi: float, width: int, cmap: str = "magma_r") -> np.ndarray:
    """One horizontal colour bar [h, width, 3] from ``lo`` (left) to ``hi`` metres (right),
    coloured by :func:`colorize_depth`, with :func:`colorbar_labels` underneath."""
    from ..utils.labels import label_font

    font = label_font(width)
    ramp = np.linspace(max(lo, 1e-6), max(hi, 1e-6), max(width, 2))[None].repeat(16, 0)
    bar = colorize_depth(ramp, vmin=max(lo, 1e-6), vmax=max(hi, 1e-6), cmap=cmap)[:, :width]
    text_h = font.getbbox("0.00 m")[3] + 8
    canvas = Image.new("RGB", (width, 16 + 4 + text_h), (255, 255, 255))
    canvas.paste(Image.fromarray(bar), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for frac, text in colorbar_labels(lo, hi):
        anchor = {0.0: "la", 0.5: "ma", 1.0: "ra"}[frac]
        draw.text((frac * (width - 1), 20), text, fill=(40, 40, 40), font=font, anchor=anchor)
    return np.asarray(canvas)
