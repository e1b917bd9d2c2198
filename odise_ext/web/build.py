"""Building the web demo's model session from a config file, by ``MODEL.META_ARCHITECTURE``."""
from typing import Callable, Dict, Sequence, Tuple

from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng

import odise_ext  # noqa: F401  (registers datasets, mappers and models)
import odise_ext.png.meta_arch  # noqa: F401  (registers PNGDiffusion)

from ..config import setup_cfg
from ..dense.predictor import DensePredictor
from ..engine.predictor import Predictor
from ..engine.safe_checkpoint import SafeCheckpointer
from .png_task import PNGRunner
from .session import DemoSession

__all__ = ["TASKS", "build_session"]


def _odise(cfg):
    # The page draws the panoptic output and scores segments with the semantic one; instance
    # inference would only cost time.
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = True
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False
    cfg.freeze()
    predictor = Predictor(cfg)
    return DemoSession(cfg, predictor, predictor.aug)


def _png(cfg):
    cfg.freeze()
    model = build_model(cfg).eval()
    SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    runner = PNGRunner(cfg, model)
    return DemoSession(cfg, runner, runner.aug)


def _vpd(cfg):
    cfg.freeze()
    predictor = DensePredictor(cfg)
    return DemoSession(cfg, predictor, predictor.aug)


# META_ARCHITECTURE -> (task name shown on the tab, session builder)
TASKS: Dict[str, Tuple[str, Callable]] = {
    "ODISE": ("Open-vocabulary panoptic segmentation", _odise),
    "PNGDiffusion": ("Panoptic narrative grounding", _png),
    "DenseSemanticSegmentor": ("Semantic segmentation", _vpd),
    "DenseDepthEstimator": ("Depth estimation", _vpd),
    "DenseReferSegmentor": ("Referring segmentation", _vpd),
    "DensePoseEstimator": ("Pose estimation", _vpd),
}


def build_session(config_file: str, opts: Sequence[str] = ()) -> DemoSession:
    """Config + overrides -> a loaded :class:`DemoSession` (``session.task``: its META_ARCHITECTURE)."""
    cfg = setup_cfg(config_file, opts, freeze=False)
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch not in TASKS:
        raise ValueError(f"{config_file}: the web demo has no task for MODEL.META_ARCHITECTURE '{arch}' "
                         f"(supported: {sorted(TASKS)})")
    if cfg.SEED >= 0:  # random (untrained) parts are then the same on every start
        seed_all_rng(cfg.SEED)
    session = TASKS[arch][1](cfg)
    session.config_file = config_file
    return session
