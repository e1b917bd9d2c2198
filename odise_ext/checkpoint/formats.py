"""Released checkpoint formats: what one format is (:class:`ReleaseFormat`), the table of every
format a family registered, and their key lists.

Each family describes its own formats and ships their key lists in its package
(``odise_ext.vpd.release``, ``odise_ext.metaprompts.release``) and registers them here with
:func:`register_release_format` when the family is imported; the conversion machinery
(:mod:`odise_ext.checkpoint.convert`) knows no family. A key list (``*.tsv.gz``: key, shape,
dtype, numel of every tensor, in checkpoint order) is read off the released file, or derived from
the public code where none was available (the family's module says which).
"""
import functools
import gzip
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Tuple

__all__ = [
    "EXTRACTOR_PREFIX",
    "RELEASE_FORMATS",
    "ReleaseFormat",
    "register_release_format",
    "release_format",
    "release_key_shapes",
]

# Where our backbone's diffusion feature extractor lives in a meta-architecture's state dict.
EXTRACTOR_PREFIX = "backbone.feature_extractor."


@dataclass(frozen=True)
class ReleaseFormat:
    """How one released format maps onto our model.

    name: format id. key_file: its key list in ``key_dir`` (the owning family's directory).
    container: top-level key of the state dict. unet_prefix / vae_prefix: where the ldm UNet /
    VAE live in the release. rules: (release regex, our replacement) for every other key, tried in
    order. duplicates: {release key: release key it must equal} (stored twice, mapped once).
    dropped: release key prefixes with no counterpart in our model (kept aside for the way back).
    unused: prefixes of our keys absent from the release (built but never used by the format).
    ours_prefix: where our backbone's feature extractor lives.
    """

    name: str
    key_file: str
    key_dir: str
    container: str
    unet_prefix: str
    vae_prefix: str
    rules: Tuple[Tuple[str, str], ...]
    duplicates: Dict[str, str] = field(default_factory=dict)
    dropped: Tuple[str, ...] = ()
    unused: Tuple[str, ...] = ()
    ours_prefix: str = EXTRACTOR_PREFIX


# name -> format, filled by the families' ``release`` packages (imported with ``odise_ext``).
RELEASE_FORMATS: Dict[str, ReleaseFormat] = {}


def register_release_format(fmt: ReleaseFormat) -> ReleaseFormat:
    """Add ``fmt`` to :data:`RELEASE_FORMATS` (a second format of the same name is an error)."""
    if fmt.name in RELEASE_FORMATS:
        raise ValueError(f"released format {fmt.name!r} is registered twice")
    if not os.path.isfile(os.path.join(fmt.key_dir, fmt.key_file)):
        raise FileNotFoundError(f"released format {fmt.name!r}: no key list {fmt.key_file} in {fmt.key_dir}")
    RELEASE_FORMATS[fmt.name] = fmt
    return fmt


def release_format(fmt: str) -> ReleaseFormat:
    """The :class:`ReleaseFormat` named ``fmt`` (an unknown name is an error listing the known)."""
    if fmt not in RELEASE_FORMATS:
        raise ValueError(f"unknown released format {fmt!r}; known: {sorted(RELEASE_FORMATS)}")
    return RELEASE_FORMATS[fmt]


def release_key_shapes(fmt: str) -> "OrderedDict[str, Tuple[int, ...]]":
    """Released key -> shape of format ``fmt``, in checkpoint order (a fresh copy)."""
    f = release_format(fmt)
    return OrderedDict(_read_key_file(os.path.join(f.key_dir, f.key_file)))


@functools.lru_cache(maxsize=None)
def _read_key_file(path: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    # Read once per process: format detection and each conversion ask for the same lists.
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#") or line.startswith("key\t"):
                continue
            key, shape = line.rstrip("\n").split("\t")[:2]
            out.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return tuple(out)
