"""Checks a tool runs on its config before building anything, and the mark that makes a tool
print their errors as one line (``tools/one_line_errors.py``) instead of a traceback.

A typo'd key, ``MODEL.DEVICE cuda`` on a machine without CUDA or a missing weights file otherwise
surfaces after the model is built (minutes for full-size models), deep in a traceback.
"""
import os
from contextlib import contextmanager

from .defaults import setup_cfg
from .suggest import check_device, closest_keys
from .checks import cfg_value

__all__ = ["checked_cfg", "check_dataset_names", "check_weight_paths", "user_input_errors"]

# Weight keys that name a local file or folder unless "random" (or empty: an error at build time).
_LOCAL_WEIGHTS = ("MODEL.DIFFUSION.WEIGHTS", "MODEL.CLIP.WEIGHTS")


@contextmanager
def user_input_errors():
    """Mark ``KeyError`` / ``ValueError`` / ``OSError`` raised inside as the user's input error
    (attribute ``one_line = True``) and re-raise it unchanged. Library callers and tests see the
    normal exception; a tool's entry point prints it as one line."""
    try:
        yield
    except (KeyError, ValueError, OSError) as e:
        e.one_line = True
        raise


def check_weight_paths(cfg) -> None:
    """``MODEL.WEIGHTS`` is a readable checkpoint (:func:`check_weights_file`) and the diffusion
    and CLIP weights, when paths, exist. ``FileNotFoundError`` / ``ValueError`` naming the key."""
    from ..engine.weights_file import check_weights_file

    check_weights_file(cfg.MODEL.WEIGHTS)
    for key in _LOCAL_WEIGHTS:
        value = cfg_value(cfg, key)
        if value and value != "random" and "://" not in value and not os.path.exists(value):
            raise FileNotFoundError(f"{key}={value} does not exist (a local file or folder, or 'random')")


def check_dataset_names(cfg) -> None:
    """Every name in ``DATASETS.TRAIN`` / ``DATASETS.TEST`` is registered (``KeyError`` naming the
    closest registered names otherwise). Only names: a dataset's files are read, and checked,
    when it is loaded."""
    from detectron2.data import DatasetCatalog

    import odise_ext  # noqa: F401  (registers the built-in dataset names)

    registered = DatasetCatalog.list()
    for key in ("DATASETS.TRAIN", "DATASETS.TEST"):
        for name in cfg_value(cfg, key) or ():
            if name not in registered:
                near = closest_keys(name, registered)
                hint = f"; did you mean {' or '.join(near)}?" if near else "; see datasets/README.md"
                raise KeyError(f"{key}: {name!r} is not a registered dataset{hint}")


def checked_cfg(config_file, opts=(), *, weights: bool = True, freeze: bool = True, world_size=None):
    """:func:`setup_cfg` (``world_size``: the training processes the batch is split over, default
    this process group's size) plus :func:`check_device`, :func:`check_dataset_names` and
    (``weights``) :func:`check_weight_paths`, every error marked by :func:`user_input_errors`."""
    with user_input_errors():
        cfg = setup_cfg(config_file, opts, freeze=freeze, world_size=world_size)
        check_device(cfg)
        check_dataset_names(cfg)
        if weights:
            check_weight_paths(cfg)
    return cfg
