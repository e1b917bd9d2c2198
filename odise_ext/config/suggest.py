"""One-line errors for config mistakes a user makes on the command line or in a yaml.

yacs reports a misspelt key as a traceback ending in ``Non-existent config key: MODEL.DIFUSION.X``;
:func:`merge_with_suggestions` turns it into an :class:`UnknownConfigKeyError` that names the
closest existing keys (``difflib`` over every full key of the config). :func:`check_device`
says, before any model is built, that ``MODEL.DEVICE cuda`` cannot work on a machine without CUDA.
"""
import difflib
import re
from typing import Callable, List

__all__ = ["UnknownConfigKeyError", "all_keys", "check_device", "closest_keys", "merge_with_suggestions"]

# yacs: "Non-existent config key: A.B" (merge_from_other_cfg / merge_from_list); detectron2's
# KeyError "Non-existent key: A.B" (its _merge_a_into_b); both end with the full key.
_UNKNOWN = re.compile(r"Non-existent (?:config )?key: ([\w.]+)")


class UnknownConfigKeyError(KeyError):
    """A config key that does not exist; ``str()`` is the one-line message (no quotes)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key

    def __str__(self) -> str:
        return self.args[0]


def all_keys(cfg, prefix: str = "") -> List[str]:
    """Every leaf key of a ``CfgNode`` in dotted form (``MODEL.DIFFUSION.DTYPE``)."""
    keys = []
    for name, value in cfg.items():
        full = f"{prefix}{name}"
        keys += all_keys(value, full + ".") if isinstance(value, dict) else [full]
    return keys


def closest_keys(key: str, keys: List[str], n: int = 3) -> List[str]:
    """Up to ``n`` keys of ``keys`` closest to ``key``: first by the whole dotted key (only those
    about as close as the closest, so one clear typo gets one answer), then by its last part (a
    key put under the wrong namespace, e.g. ``SOLVER.SEED`` -> ``SEED``) when none is spelt alike."""
    scored = sorted(((difflib.SequenceMatcher(None, key, k).ratio(), k) for k in keys), reverse=True)
    best = scored[0][0] if scored else 0.0
    found = [k for r, k in scored[:n] if r >= 0.75 and r >= best - 0.02]
    if not found:
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = [k for k in keys if k.rsplit(".", 1)[-1] == leaf and k not in found]
        found += by_leaf[: n - len(found)]
    return found


def merge_with_suggestions(cfg, merge: Callable[[], None], source: str) -> None:
    """Run ``merge()`` (a yacs merge into ``cfg``); an unknown key raises
    :class:`UnknownConfigKeyError` naming ``source`` (the yaml file or "the overrides") and the
    closest keys. Other errors pass unchanged."""
    try:
        merge()
    except (KeyError, AssertionError) as e:
        match = _UNKNOWN.search(str(e))
        if match is None:
            raise
        key = match.group(1)
        near = closest_keys(key, all_keys(cfg))
        hint = f"; did you mean {' or '.join(near)}?" if near else "; no config key is close to it"
        raise UnknownConfigKeyError(key, f"unknown config key {key} in {source}{hint}") from None


def check_device(cfg) -> None:
    """``ValueError`` when ``MODEL.DEVICE`` names an accelerator this machine does not have,
    saying what to set instead. Call before building the model."""
    device = str(cfg.MODEL.DEVICE)
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"MODEL.DEVICE is {device!r} but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False); set MODEL.DEVICE cpu (append `MODEL.DEVICE cpu` "
            "to the command line, or `--opts MODEL.DEVICE cpu` for tools/demo.py and tools/web_demo.py)"
        )
    index = device.partition(":")[2]
    if index.isdigit() and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"MODEL.DEVICE is {device!r} but this machine has {torch.cuda.device_count()} CUDA GPU(s) "
            "(cuda:0 ...); set MODEL.DEVICE to one of them, or cuda"
        )
