"""The web demo's VPD / Meta-Prompts tasks: semantic segmentation, depth (with a colour bar and
the metric range), referring segmentation and pose. Each ``run_*`` takes a
:class:`~odise_ext.web.session.DemoSession` and a uint8 RGB image [H, W, 3] and returns
(drawing uint8 RGB, summary text)."""
from typing import Tuple

import numpy as np
from detectron2.data import Metadata, MetadataCatalog
from PIL import Image, ImageDraw, ImageFont

from ..dense import visualization as vpd_vis
from ..dense.depth_vis import colorize_depth, depth_colorbar as _depth_colorbar
from ..utils.visualization import side_by_side
from .inputs import InputError, parse_boxes

__all__ = ["test_metadata", "run_semseg", "run_depth", "depth_colorbar", "run_refer", "run_pose"]

DEPTH_CMAP = "magma_r"  # vpd_vis.draw_depth's: near = bright


def test_metadata(cfg) -> Metadata:
    """Class / keypoint names of the config's first test dataset (empty without one)."""
    return MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else Metadata(name="web_demo")


def _bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def run_semseg(session, rgb: np.ndarray) -> Tuple[np.ndarray, str]:
    with session.lock:
        scores = session.runner(_bgr(rgb))["sem_seg"]
    meta = test_metadata(session.cfg)
    names = meta.get("stuff_classes", None) or list(session.cfg.MODEL.VPD.PROMPT.CLASS_NAMES)
    names = names or [f"class {i}" for i in range(scores.shape[0])]
    drawing = vpd_vis.draw_sem_seg(rgb, scores, vpd_vis.semantic_metadata(names))
    labels, counts = np.unique(scores.argmax(dim=0).cpu().numpy(), return_counts=True)
    present = ", ".join(f"{names[i]} ({100.0 * c / counts.sum():.1f}%)" for i, c in zip(labels, counts))
    return drawing, f"Classes present: {present}."


def depth_colorbar(lo: float, hi: float, width: int) -> np.ndarray:
    """One colour bar [h, width, 3] from ``lo`` to ``hi`` metres (:func:`dense.depth_vis.depth_colorbar`)."""
    return _depth_colorbar(lo, hi, width, cmap=DEPTH_CMAP)


def run_depth(session, rgb: np.ndarray) -> Tuple[np.ndarray, str]:
    """Colour-mapped depth (this image's range, near bright) beside the image, a colour bar with
    the metric range underneath."""
    with session.lock:
        depth = session.runner(_bgr(rgb))["depth"].float().cpu().numpy()
    ok = np.isfinite(depth) & (depth > 0)
    if not ok.any():
        raise InputError("The model predicted no positive depth for this image.")
    lo, hi = float(depth[ok].min()), float(depth[ok].max())
    colored = colorize_depth(depth, vmin=lo, vmax=hi, cmap=DEPTH_CMAP)
    top = side_by_side(rgb, colored)
    drawing = np.concatenate([top, depth_colorbar(lo, hi, top.shape[1])], 0)
    cap = session.cfg.MODEL.VPD.DEPTH.MAX_DEPTH
    return drawing, f"Depth range {lo:.2f} m to {hi:.2f} m (the model predicts at most {cap:g} m)."


def run_refer(session, rgb: np.ndarray, sentence: str) -> Tuple[np.ndarray, str]:
    if not (sentence or "").strip():
        raise InputError("Empty sentence: describe the object to segment, e.g. 'the red circle on the left'.")
    with session.lock:
        prob = session.runner(_bgr(rgb), sentence=sentence.strip())["ref_mask"]
    area = float((prob > 0.5).float().mean())
    return vpd_vis.draw_ref_mask(rgb, prob, sentence.strip()), f"The mask covers {100 * area:.1f}% of the image."


def run_pose(session, rgb: np.ndarray, boxes_text: str, original_size=None,
             keypoint_threshold: float = 0.05) -> Tuple[np.ndarray, str]:
    """``boxes_text``: person boxes 'x0,y0,x1,y1;...' in pixels of the uploaded image of
    ``original_size`` (h, w) (default: ``rgb``'s size; ``rgb`` may be a shrunk copy)."""
    h, w = original_size or rgb.shape[:2]
    boxes = parse_boxes(boxes_text, w, h) * np.array([rgb.shape[1] / w, rgb.shape[0] / h] * 2, np.float32)
    with session.lock:
        inst = session.runner(_bgr(rgb), boxes=boxes)["instances"]
    drawing = vpd_vis.draw_keypoints(rgb, inst, test_metadata(session.cfg), keypoint_threshold)
    return drawing, f"{len(inst)} box(es); keypoints with a score under {keypoint_threshold} are not drawn."
