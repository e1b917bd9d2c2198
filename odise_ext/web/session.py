"""One loaded model for the web demo: built once per process, reused by every request.

A :class:`DemoSession` holds the config, the predictor (or model) of one config file, the
test-time resize of that config, a lock (requests of one model run one at a time: an ODISE
request sets the model's test vocabulary before it runs) and a line saying where the weights
come from.
"""
import threading
from typing import Optional, Tuple

import numpy as np
from detectron2.data import transforms as T

__all__ = ["DemoSession", "weights_note", "describe_resize"]


def weights_note(cfg) -> str:
    """Where the weights come from, for the page. Random weights are said so plainly."""
    random_parts = []
    if cfg.MODEL.DIFFUSION.WEIGHTS == "random":
        random_parts.append("the diffusion model (MODEL.DIFFUSION.WEIGHTS = random)")
    if cfg.MODEL.CLIP.WEIGHTS == "random" and cfg.MODEL.META_ARCHITECTURE == "ODISE":
        random_parts.append("CLIP (MODEL.CLIP.WEIGHTS = random)")
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
        runner: the predictor (``DefaultPredictor`` / ``VPDPredictor``) or the model itself.
        aug: the config's test-time resize (a detectron2 augmentation), or None.
    """

    def __init__(self, cfg, runner, aug, config_file: str = ""):
        self.cfg = cfg
        self.task = cfg.MODEL.META_ARCHITECTURE
        self.config_file = config_file
        self.runner = runner
        self.aug = aug
        self.lock = threading.Lock()
        self.weights_note = weights_note(cfg)
        self.resize_note = describe_resize(aug)

    @property
    def model(self):
        return getattr(self.runner, "model", self.runner)

    def model_input_size(self, height: int, width: int) -> Tuple[int, int]:
        """(h, w) the model sees for an image of this size."""
        if self.aug is None:
            return height, width
        t = self.aug.get_transform(np.zeros((height, width, 3), np.uint8))
        return (t.new_h, t.new_w) if hasattr(t, "new_h") else (height, width)

    def fit(self, rgb: np.ndarray) -> Tuple[np.ndarray, Optional[str]]:
        """Shrink an image larger than the model's input to that size (aspect kept).

        The model resizes every image to its test size anyway; shrinking large uploads first
        makes drawing and transfer cheap and shows the user what the model saw.

        Returns:
            (uint8 RGB [h, w, 3], a note for the page or None when the image was kept).
        """
        h, w = rgb.shape[:2]
        mh, mw = self.model_input_size(h, w)
        # A fixed (square) resize would distort the drawing: keep the aspect, fit the longer side.
        scale = min(mh / h, mw / w) if isinstance(self.aug, T.ResizeShortestEdge) else max(mh, mw) / max(h, w)
        if scale >= 1.0:
            return rgb, None
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = T.ResizeTransform(h, w, nh, nw).apply_image(rgb)
        note = (f"The {w}x{h} image was resized to {nw}x{nh} as the config's test transform does "
                f"({self.resize_note}); results are drawn at that size.")
        return small, note
