"""odise-ext: frozen text-to-image diffusion models as Detectron2 perception backbones.

Importing the package registers, once, every built-in dataset name (no data is generated or read
at import time), every dataset mapper, every config namespace and every model component in
detectron2's registries. Shared pieces live in ``config``, ``data``, ``engine``, ``utils``,
``diffusion`` (the diffusion backbone) and ``mask2former``; the paper families (``odise``, ``png``,
``vpd``, ``metaprompts``) own their prompts, backbones, models and released-checkpoint code, and
``dense`` holds the task-generic dense models (segmentation, depth, referring, pose).
"""
from .config import add_odise_config, get_odise_cfg, setup_cfg
from . import data  # noqa: F401  (registers datasets)
from . import diffusion, mask2former  # noqa: F401  (shared backbone, prompts, Mask2Former pieces)
from . import odise, png, vpd, metaprompts, dense  # noqa: F401  (task families and the task-generic dense models)
from .zoo import register_zoo_handler

# MODEL.WEIGHTS odise://... / vpd://... / metaprompts://... resolve through the zoo's iopath handler
# (detectron2's PathManager.register_handler, its public extension API; odise_ext/zoo)
register_zoo_handler()

__version__ = "0.1.0"
__all__ = ["add_odise_config", "get_odise_cfg", "setup_cfg"]
