"""Config keys of odise-ext.

``add_odise_config(cfg)`` adds every key this project defines to a detectron2 ``CfgNode``: the
shared namespaces defined here (``DATA``, ``MODEL.DIFFUSION``, ``MODEL.MASK_FORMER``, ``OPTIMIZER``,
``MODEL.SPEED``), then each task family's, which its package registers with
:func:`register_config` (``odise_ext/<family>/config.py``). This package imports no task package;
importing ``odise_ext.config`` imports ``odise_ext`` first, which imports every family, so the
registrations are complete whenever a config is made. Each key is commented once, where it is
defined. Keys that are not defined are an error when a yaml is merged (detectron2's
``new_allowed=False``).
"""
from typing import Callable, List

from .data import add_data_config
from .diffusion import add_diffusion_config
from .mask_former import add_mask_former_config
from .solver import add_solver_config
from .speed import add_speed_config

__all__ = ["add_odise_config", "get_odise_cfg", "register_config", "setup_cfg"]

_SHARED = (add_data_config, add_diffusion_config, add_mask_former_config, add_solver_config, add_speed_config)
_FAMILIES: List[Callable] = []


def register_config(add_keys: Callable) -> Callable:
    """Decorator: ``add_keys(cfg)`` adds a task family's keys (called after the shared ones)."""
    if add_keys not in _FAMILIES:
        _FAMILIES.append(add_keys)
    return add_keys


def add_odise_config(cfg):
    """Add all odise-ext keys to ``cfg`` in place (idempotent) and return it."""
    if "OPTIMIZER" in cfg:  # already added
        return cfg
    for add_keys in (*_SHARED, *_FAMILIES):
        add_keys(cfg)
    return cfg


from .defaults import get_odise_cfg, setup_cfg  # noqa: E402  (needs add_odise_config)
