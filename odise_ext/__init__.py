"""odise-ext: frozen text-to-image diffusion models as Detectron2 perception backbones.

Importing the package registers, once, every built-in dataset name (no data is generated or read
at import time), every dataset mapper, and every model component in detectron2's registries.
"""
from .config import add_odise_config, get_odise_cfg, setup_cfg
from . import data  # noqa: F401  (registers datasets and mappers)
from . import modeling  # noqa: F401  (registers backbones, heads, meta-architectures)

__version__ = "0.1.0"
__all__ = ["add_odise_config", "get_odise_cfg", "setup_cfg"]
