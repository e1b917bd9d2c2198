"""How ``tools/demo.py`` runs each model: one entry per ``MODEL.META_ARCHITECTURE``, registered
by the task package that owns the model (``odise_ext/<task>/hooks.py``)."""
from typing import Dict, Tuple

import numpy as np
from detectron2.data import Metadata, MetadataCatalog
from detectron2.utils.registry import Registry

from .predictor import Predictor

__all__ = ["DEMO_REGISTRY", "TaskDemo", "register_demo"]

DEMO_REGISTRY = Registry("DEMO")
DEMO_REGISTRY.__doc__ = """
``META_ARCHITECTURE`` name -> :class:`TaskDemo` subclass (register with :func:`register_demo`).
"""


def register_demo(meta_architecture: str):
    """Class decorator: register a :class:`TaskDemo` for the meta-architecture named so."""

    def deco(cls):
        DEMO_REGISTRY._do_register(meta_architecture, cls)
        return cls

    return deco


class TaskDemo:
    """What the demo needs to know about one model: its predictor, the demo flags it reads, its
    per-image inputs and how to draw its output. Defaults: :class:`Predictor` (detectron2's
    ``DefaultPredictor`` with validated inputs), no flags, no inputs."""

    # Task flags of tools/demo.py this model reads (among "vocab", "things", "sentence", "scene", "boxes",
    # "narrative", "phrases").
    flags: Tuple[str, ...] = ()

    def __init__(self, cfg, args):
        self.cfg, self.args = cfg, args

    def check_args(self):
        """Raise ``SystemExit`` naming the flag when the demo's arguments cannot work (run before
        the model is built)."""

    def build_predictor(self):
        return Predictor(self.cfg)

    def metadata(self, model) -> Metadata:
        """Class / keypoint names for drawing: the config's first test dataset's (or empty)."""
        return MetadataCatalog.get(self.cfg.DATASETS.TEST[0]) if self.cfg.DATASETS.TEST else Metadata(name="demo")

    def inputs(self, bgr: np.ndarray) -> Dict[str, object]:
        """Keyword arguments of the predictor call for one [H, W, 3] BGR image."""
        return {}

    def draw(self, rgb: np.ndarray, output: dict, metadata) -> Tuple[np.ndarray, str]:
        """[H, W, 3] uint8 drawing of ``output`` over ``rgb``, and a one-line summary."""
        raise NotImplementedError
