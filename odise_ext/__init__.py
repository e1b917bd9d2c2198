"""odise-ext: frozen text-to-image diffusion models as Detectron2 perception backbones.

Importing the package registers, once, every built-in dataset name (no data is generated or read
at import time), every dataset mapper, and every model component in detectron2's registries, and
makes detectron2's checkpointer read weights without executing code (``utils/safe_load.py``).
"""
from .config import add_odise_config, get_odise_cfg, setup_cfg
from . import data  # noqa: F401  (registers datasets and mappers)
from . import modeling  # noqa: F401  (registers backbones, heads, meta-architectures)
from .utils.safe_load import install_safe_detectron2_loading

install_safe_detectron2_loading()

__version__ = "0.1.0"
__all__ = ["add_odise_config", "get_odise_cfg", "setup_cfg"]
