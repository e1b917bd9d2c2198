"""odise-ext: frozen text-to-image diffusion models as Detectron2 perception backbones.

Importing the package registers, once, every built-in dataset name (no data is generated or read
at import time), every dataset mapper, and every model component in detectron2's registries, and
makes detectron2's checkpointer read weights without executing code (``utils/safe_load.py``). Shared
pieces live in ``diffusion`` (the diffusion backbone) and ``mask2former``; each task family
(``odise``, ``png``, ``vpd``) owns its config, modules, models, mappers, evaluators and drawing code.
"""
from .config import add_odise_config, get_odise_cfg, setup_cfg
from . import data  # noqa: F401  (registers datasets)
from . import diffusion, mask2former  # noqa: F401  (shared backbone, prompts, Mask2Former pieces)
from . import odise, png, vpd, metaprompts, dense  # noqa: F401  (task families and the task-generic dense models)
from .utils.safe_load import install_safe_detectron2_loading
from .zoo import register_zoo_handler

install_safe_detectron2_loading()
register_zoo_handler()  # MODEL.WEIGHTS odise://... / vpd://... / metaprompts://... (odise_ext/zoo)

__version__ = "0.1.0"
__all__ = ["add_odise_config", "get_odise_cfg", "setup_cfg"]
