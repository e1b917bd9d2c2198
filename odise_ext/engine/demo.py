"""How ``tools/demo.py`` and the web demo (``tools/web_demo.py``) run each model: one entry per
``MODEL.META_ARCHITECTURE``, registered by the task package that owns the model
(``odise_ext/<task>/hooks.py``). The web demo builds one tab per entry with a ``web_title``."""
from typing import Dict, List, Tuple

import numpy as np
from detectron2.data import Metadata, MetadataCatalog
from detectron2.utils.registry import Registry

from .predictor import Predictor

__all__ = ["DEMO_REGISTRY", "TaskDemo", "register_demo", "demo_class", "demo_classes"]

DEMO_REGISTRY = Registry("DEMO")
DEMO_REGISTRY.__doc__ = """
:class:`TaskDemo` subclasses, each named ``<META_ARCHITECTURE>Demo`` (register with
:func:`register_demo`, look up with :func:`demo_class`).
"""
_SUFFIX = "Demo"


def register_demo(cls):
    """Class decorator: register the :class:`TaskDemo` subclass ``<META_ARCHITECTURE>Demo`` (the
    demo of the meta-architecture its name starts with)."""
    if not (isinstance(cls, type) and issubclass(cls, TaskDemo)):
        raise TypeError(f"register_demo expects a TaskDemo subclass, got {cls!r}")
    if not cls.__name__.endswith(_SUFFIX) or cls.__name__ == _SUFFIX:
        raise ValueError(f"a demo class is named '<META_ARCHITECTURE>{_SUFFIX}', got '{cls.__name__}'")
    DEMO_REGISTRY.register(cls)
    return cls


def demo_classes() -> Dict[str, type]:
    """META_ARCHITECTURE -> its registered :class:`TaskDemo` subclass."""
    return {name[: -len(_SUFFIX)]: cls for name, cls in DEMO_REGISTRY}


def demo_class(meta_architecture: str) -> type:
    """The :class:`TaskDemo` registered for ``meta_architecture``; ``KeyError`` naming the models
    that have one otherwise."""
    demos = demo_classes()
    if meta_architecture not in demos:
        raise KeyError(f"no demo entry for {meta_architecture}; models with one: {sorted(demos)}")
    return demos[meta_architecture]


class TaskDemo:
    """What the demo needs to know about one model: its predictor, the demo flags it reads, its
    per-image inputs and how to draw its output. Defaults: :class:`Predictor` (detectron2's
    ``DefaultPredictor`` with validated inputs), no flags, no inputs."""

    # Task flags of tools/demo.py this model reads (among "vocab", "things", "sentence", "scene", "boxes",
    # "narrative", "phrases").
    flags: Tuple[str, ...] = ()
    # The web demo's tab title ("": no tab) and the prefix of its page elements' ids.
    web_title: str = ""
    web_prefix: str = ""

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

    # ---- the web demo (``args`` is None there) ----------------------------------------------
    def web_runner(self):
        """(runner, its test-time resize: a detectron2 augmentation or None) of the web session;
        the tab calls ``runner(bgr, **inputs)``. Default: :meth:`build_predictor`."""
        predictor = self.build_predictor()
        return predictor, predictor.aug

    def random_parts(self) -> List[str]:
        """The parts of the model whose weights are random (for the page), besides the task heads."""
        if self.cfg.MODEL.DIFFUSION.WEIGHTS == "random":
            return ["the diffusion model (MODEL.DIFFUSION.WEIGHTS = random)"]
        return []

    def web_tab(self, session, prefix: str, tagger: str) -> None:
        """Add this task's Gradio components and events to the current tab (element ids start
        with ``prefix``; ``tagger``: the noun-phrase tagger spec of ``tools/web_demo.py``)."""
        raise NotImplementedError
