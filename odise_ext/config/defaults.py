"""Config construction shared by tools, tests and scripts."""
from detectron2.config import get_cfg

from . import add_odise_config

__all__ = ["get_odise_cfg", "setup_cfg"]


def get_odise_cfg():
    """detectron2's default config with every odise-ext key added."""
    return add_odise_config(get_cfg())


def setup_cfg(config_file, opts=(), freeze=True):
    """Config from a yaml (``_BASE_`` composition) plus ``KEY VALUE`` overrides.

    Unknown keys raise a ``KeyError`` naming the key (detectron2's ``new_allowed=False``).
    """
    cfg = get_odise_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if freeze:
        cfg.freeze()
    return cfg
