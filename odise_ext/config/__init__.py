"""Config keys of odise-ext.

``add_odise_config(cfg)`` adds every key this project defines to a detectron2 ``CfgNode``. Each
namespace lives in its own module so that one concept stays in one file: the shared ones here,
each task's in its package (``odise_ext/odise/config.py``, ``png/config.py``, ``vpd/config.py``);
each key is commented once, where it is defined. Keys that are not defined here are an error when a yaml is merged
(detectron2's default ``new_allowed=False``).
"""
from .data import add_data_config
from .diffusion import add_diffusion_config
from .mask_former import add_mask_former_config
from ..odise.config import add_odise_head_config
from ..png.config import add_png_config
from .solver import add_solver_config
from ..vpd.config import add_vpd_config
from .speed import add_speed_config

__all__ = ["add_odise_config", "get_odise_cfg", "setup_cfg"]


def add_odise_config(cfg):
    """Add all odise-ext keys to ``cfg`` in place (idempotent) and return it."""
    if "OPTIMIZER" in cfg:  # already added
        return cfg
    add_data_config(cfg)
    add_diffusion_config(cfg)
    add_mask_former_config(cfg)
    add_odise_head_config(cfg)
    add_png_config(cfg)
    add_vpd_config(cfg)
    add_solver_config(cfg)
    add_speed_config(cfg)
    return cfg


from .defaults import get_odise_cfg, setup_cfg  # noqa: E402  (needs add_odise_config)
