"""Config construction shared by tools, tests and scripts.

Every YAML file of a config, ``_BASE_`` files included, is parsed with ``yaml.safe_load``: a
Python tag (``!!python/object/apply:...``, ``!!python/name:...``, ``!!python/module:...``) is
refused naming the file and the tag, never constructed (detectron2's ``merge_from_file`` falls
back to ``yaml.unsafe_load`` by default). A ``_BASE_`` cycle is named in one line. A local ``.pkl``
``MODEL.WEIGHTS`` is checked for anything but numpy arrays and containers here, before any model
is built, because detectron2's own ``DefaultPredictor`` reads ``.pkl`` files with full pickle.
"""
import os

import yaml
from detectron2.config import get_cfg

from ..utils.safe_load import scan_pickle
from . import add_odise_config
from ..zoo.config import fill_zoo_base_weights
from .checks import check_cfg
from .renamed import check_renamed_opts, check_renamed_yaml
from .suggest import merge_with_suggestions

__all__ = ["check_yaml_chain", "get_odise_cfg", "setup_cfg"]


def get_odise_cfg():
    """detectron2's default config with every odise-ext key added."""
    return add_odise_config(get_cfg())


def setup_cfg(config_file, opts=(), freeze=True, world_size=None):
    """Config from a yaml (``_BASE_`` composition) plus ``KEY VALUE`` overrides, its values
    checked (``check_cfg``; ``world_size``: the processes ``SOLVER.IMS_PER_BATCH`` is split over,
    default this process group's size).

    Unknown keys raise an ``UnknownConfigKeyError`` (a ``KeyError``) naming the key, where it was
    given and the closest existing keys (detectron2's ``new_allowed=False``), renamed or removed
    ones a ``KeyError`` naming what replaced them (``renamed.py``); a
    missing, empty or non-YAML file, or an odd override list, a ``FileNotFoundError`` /
    ``ValueError`` naming it.
    """
    check_yaml_chain(config_file)
    check_renamed_yaml(config_file)
    check_renamed_opts(opts)
    cfg = get_odise_cfg()
    # safe_load for every file of the chain; an unknown key names the closest existing ones
    merge_with_suggestions(cfg, lambda: cfg.merge_from_file(config_file, allow_unsafe=False), config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ValueError(f"config overrides must be KEY VALUE pairs; {opts[-1]!r} has no value")
    merge_with_suggestions(cfg, lambda: cfg.merge_from_list(opts), "the command-line overrides")
    fill_zoo_base_weights(cfg)  # a zoo MODEL.WEIGHTS names its SD / CLIP weights
    check_cfg(cfg, world_size)  # every value with a rule: one line naming key, value and rule (ConfigError)
    weights = cfg.MODEL.WEIGHTS
    if weights.endswith(".pkl") and "://" not in weights and os.path.isfile(weights):
        scan_pickle(weights)  # UnsafeFileError naming the file and the global
    if freeze:
        cfg.freeze()
    return cfg


def check_yaml_chain(path, _chain=()):
    """Check ``path`` and its ``_BASE_`` files (relative to the file naming them, as detectron2
    resolves them): each exists, is safe YAML holding a mapping, and no file is its own base."""
    key = os.path.realpath(path)
    if key in _chain:
        names = [os.path.relpath(p) for p in (*_chain[_chain.index(key):], key)]
        raise ValueError(f"config file {path}: _BASE_ cycle {' -> '.join(names)}")
    data = _check_yaml_file(path)
    bases = data.get("_BASE_", [])
    for base in bases if isinstance(bases, list) else [bases]:
        if not isinstance(base, str):
            raise ValueError(f"config file {path}: _BASE_ must name files, not {base!r}")
        base = os.path.expanduser(base)
        if not base.startswith(("/", "https://", "http://")):
            base = os.path.join(os.path.dirname(path), base)
        check_yaml_chain(base, (*_chain, key))


def _check_yaml_file(path):
    """The checks yacs leaves to a TypeError / AttributeError deep in its merge; the file's mapping."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as e:
        raise ValueError(
            f"config file {path} uses the YAML tag {e.problem.split(' tag ')[-1] if e.problem else ''} ({e.problem_mark}), "
            "which would construct Python objects (and can run code): config files hold plain values only") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        raise ValueError(f"config file {path} is empty")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of config keys, not a {type(data).__name__}")
    return data
