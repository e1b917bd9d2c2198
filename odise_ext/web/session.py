"""One loaded model for the web demo: built once per process, reused by every request.

A :class:`DemoSession` holds the config, the predictor (or model) of one config file, the
test-time resize of that config, its task's demo entry (``odise_ext.engine.demo``: the tab
title and builder), a lock (requests of one model run one at a time; a request's inputs, e.g.
a vocabulary, are arguments of its call, never model state) and a line saying where the weights
come from.
"""
import threading
from typing import List, Sequence, Tuple

import numpy as np
from detectron2.data import transforms as T

__all__ = ["DemoSession", "MAX_DRAW_SIDE", "weights_note", "describe_resize"]

# Longest side drawn when the test resize is a fixed size (the model input is then not a guide).
MAX_DRAW_SIDE = 1024


def weights_note(cfg, random_parts: Sequence[str] = ()) -> str:
    """Where the weights come from, for the page; ``random_parts``: the model's parts with random
    weights besides the task heads (its demo entry's ``random_parts()``), said so plainly."""
    random_parts = list(random_parts)
    if cfg.MODEL.WEIGHTS:
        head = f"Weights: `{cfg.MODEL.WEIGHTS}` (MODEL.WEIGHTS)."
        if random_parts:
            head += " Parts not in that file are random: " + ", ".join(random_parts) + "."
        return head
    parts = ["the task heads (MODEL.WEIGHTS is empty)"] + random_parts
    return ("**The weights are random**: " + ", ".join(parts) + ". Outputs show that the pipeline "
            "runs, not what a trained model predicts; pass `--opts MODEL.WEIGHTS model.pth` for a trained one.")


def describe_resize(aug) -> str:
    """The config's test transform in words (``aug``: a detectron2 augmentation or None)."""
    if aug is None:
        return "no test-time resize"
    if isinstance(aug, T.ResizeShortestEdge):
        return (f"shorter side to {aug.short_edge_length[0]} px, longer side at most {aug.max_size} px "
                "(INPUT.MIN_SIZE_TEST / INPUT.MAX_SIZE_TEST)")
    if isinstance(aug, T.Resize):
        h, w = aug.shape
        return f"a fixed {w}x{h} px resize"
    return type(aug).__name__


class DemoSession:
    """
    Args:
        cfg: the frozen config.
        runner: the predictor (``DefaultPredictor`` / ``DensePredictor``) or the model itself.
        aug: the config's test-time resize (a detectron2 augmentation), or None.
        config_file: the config's path, for the page.
        demo: the task's :class:`~odise_ext.engine.demo.TaskDemo` (its tab), or None.
    """

    def __init__(self, cfg, runner, aug, config_file: str = "", *, demo=None):
        self.cfg = cfg
        self.task = cfg.MODEL.META_ARCHITECTURE
        self.config_file = config_file
        self.runner = runner
        self.aug = aug
        self.demo = demo
        self.lock = threading.Lock()
        self.weights_note = weights_note(cfg, demo.random_parts() if demo is not None else ())
        self.resize_note = describe_resize(aug)

    @property
    def model(self):
        return getattr(self.runner, "model", self.runner)

    def model_input_size(self, height: int, width: int) -> Tuple[int, int]:
        """(h, w) the model sees for an image of this size."""
        if self.aug is None:
            return height, width
        # a zero-cost view: the augmentation only reads the shape
        t = self.aug.get_transform(np.broadcast_to(np.uint8(0), (height, width, 3)))
        return (t.new_h, t.new_w) if hasattr(t, "new_h") else (height, width)

    def fit(self, rgb: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """The image to run and draw on, and notes for the page.

        With a shortest-edge test resize, an image larger than the model's input is shrunk to
        exactly that input size (the model would do it anyway; drawing and transfer get cheap).
        A fixed-size resize would distort the drawing, so there only images with a side over
        :data:`MAX_DRAW_SIDE` are shrunk (aspect kept) and the model resizes the rest itself.

        Returns:
            (uint8 RGB [h, w, 3], notes: what the model sees and any resize done here).
        """
        h, w = rgb.shape[:2]
        mh, mw = self.model_input_size(h, w)
        if isinstance(self.aug, T.ResizeShortestEdge):
            nh, nw = (mh, mw) if mh * mw < h * w else (h, w)
        else:
            scale = min(1.0, MAX_DRAW_SIDE / max(h, w))
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        notes = [f"The model sees the image at {mw}x{mh} px ({self.resize_note})."]
        if (nh, nw) == (h, w):
            return rgb, notes
        small = T.ResizeTransform(h, w, nh, nw).apply_image(rgb)
        notes.append(f"The uploaded {w}x{h} image was resized to {nw}x{nh} as the config's test transform "
                     "does; results are drawn at that size." if isinstance(self.aug, T.ResizeShortestEdge) else
                     f"The uploaded {w}x{h} image was shrunk to {nw}x{nh} for drawing.")
        return small, notes
