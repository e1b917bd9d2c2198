"""Config construction shared by tools, tests and scripts."""
import os

import yaml
from detectron2.config import get_cfg

from . import add_odise_config
from .data import check_data_config
from .suggest import merge_with_suggestions

__all__ = ["get_odise_cfg", "setup_cfg"]


def get_odise_cfg():
    """detectron2's default config with every odise-ext key added."""
    return add_odise_config(get_cfg())


def setup_cfg(config_file, opts=(), freeze=True):
    """Config from a yaml (``_BASE_`` composition) plus ``KEY VALUE`` overrides.

    Unknown keys raise an ``UnknownConfigKeyError`` (a ``KeyError``) naming the key, where it was
    given and the closest existing keys (detectron2's ``new_allowed=False``); a
    missing, empty or non-YAML file, or an odd override list, a ``FileNotFoundError`` /
    ``ValueError`` naming it.
    """
    _check_yaml_file(config_file)
    cfg = get_odise_cfg()
    merge_with_suggestions(cfg, lambda: cfg.merge_from_file(config_file), config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ValueError(f"config overrides must be KEY VALUE pairs; {opts[-1]!r} has no value")
    merge_with_suggestions(cfg, lambda: cfg.merge_from_list(opts), "the command-line overrides")
    check_data_config(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def _check_yaml_file(path):
    """The checks yacs leaves to a TypeError / AttributeError deep in its merge."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        raise ValueError(f"config file {path} is empty")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of config keys, not a {type(data).__name__}")
