"""Released checkpoints <-> odise-ext state dicts: the format-independent machinery.

Reading a release file without running code, ldm <-> diffusers names of the SD parts, renaming
by a format's rules, and comparing keys and shapes with a built model (:mod:`.convert`); what a
format is and the table of registered formats (:mod:`.formats`). The formats themselves and their
key lists belong to the families (``odise_ext/<family>/release``). Imports no task package.
"""
from .convert import (
    check_against_model,
    convert_ours_to_release,
    convert_release_to_ours,
    detect_release_format,
    load_release_checkpoint,
    name_map,
    rename_key,
)
from .formats import (
    EXTRACTOR_PREFIX,
    RELEASE_FORMATS,
    ReleaseFormat,
    register_release_format,
    release_format,
    release_key_shapes,
)

__all__ = [
    "EXTRACTOR_PREFIX",
    "RELEASE_FORMATS",
    "ReleaseFormat",
    "check_against_model",
    "convert_ours_to_release",
    "convert_release_to_ours",
    "detect_release_format",
    "load_release_checkpoint",
    "name_map",
    "register_release_format",
    "release_format",
    "release_key_shapes",
    "rename_key",
]
