"""Building the web demo's model session from a config file, through the demo entry that the
task owning ``MODEL.META_ARCHITECTURE`` registered (``odise_ext.engine.demo.DEMO_REGISTRY``)."""
from typing import Dict, Sequence

from detectron2.utils.env import seed_all_rng

import odise_ext  # noqa: F401  (registers datasets, mappers, models and their demo entries)

from ..config import setup_cfg
from ..engine.demo import demo_class, demo_classes
from .session import DemoSession

__all__ = ["web_tasks", "build_session"]


def web_tasks() -> Dict[str, str]:
    """META_ARCHITECTURE -> tab title, for every demo entry that has a web tab."""
    return {arch: cls.web_title for arch, cls in demo_classes().items() if cls.web_title}


def build_session(config_file: str, opts: Sequence[str] = ()) -> DemoSession:
    """Config + overrides -> a loaded :class:`DemoSession` (``session.task``: its META_ARCHITECTURE)."""
    cfg = setup_cfg(config_file, opts, freeze=False)
    arch = cfg.MODEL.META_ARCHITECTURE
    tasks = web_tasks()
    if arch not in tasks:
        raise ValueError(f"{config_file}: the web demo has no task for MODEL.META_ARCHITECTURE '{arch}' "
                         f"(supported: {sorted(tasks)})")
    if cfg.SEED >= 0:  # random (untrained) parts are then the same on every start
        seed_all_rng(cfg.SEED)
    demo = demo_class(arch)(cfg, None)
    runner, aug = demo.web_runner()
    cfg.freeze()
    return DemoSession(cfg, runner, aug, config_file, demo=demo)
