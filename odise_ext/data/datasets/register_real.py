"""Registration of every real benchmark ODISE trains or evaluates on.

:func:`register_all_real` registers, for data under one datasets root (default
``$DETECTRON2_DATASETS``, else ``./datasets``), every name of :data:`REAL_DATASET_NAMES`:

- COCO (``register_coco.py``): ``coco_2017_{train,val}_panoptic_with_sem_seg``,
  ``coco_2017_{train,val}_panoptic_caption_with_sem_seg``;
- ADE20K (``register_ade20k.py``): ``ade20k_panoptic_*``, ``ade20k_sem_seg_*``,
  ``ade20k_instance_*``, ``ade20k_full_sem_seg_*``;
- PASCAL (``register_pascal.py``): ``ctx59_sem_seg_*``, ``ctx459_sem_seg_*``,
  ``pascal21_sem_seg_*``.

Registration reads no file: a missing input is reported (with how to obtain it) when a dataset
is first loaded through ``DatasetCatalog.get``. ``datasets/README.md`` describes the layout.
"""
import os
from typing import Optional

from .catalog_utils import default_datasets_root
from .register_ade20k import ADE20K_DATASET_NAMES, register_all_ade20k
from .register_coco import COCO_DATASET_NAMES, register_all_coco
from .register_pascal import PASCAL_DATASET_NAMES, register_all_pascal

__all__ = ["REAL_DATASET_NAMES", "register_all_real"]

REAL_DATASET_NAMES = COCO_DATASET_NAMES + ADE20K_DATASET_NAMES + PASCAL_DATASET_NAMES


def register_all_real(root: Optional[str] = None) -> None:
    """Register :data:`REAL_DATASET_NAMES` for data under ``root``.

    Idempotent: names already registered for the same root are kept. A name registered by
    odise_ext for another root raises ``ValueError``; one registered by other code (such as
    detectron2's built-in ``ade20k_sem_seg_*``, which expects another layout) is replaced.

    Args:
        root: datasets directory; default ``$DETECTRON2_DATASETS``, else ``./datasets``
            (resolved to an absolute path now).
    """
    if root is None:
        root = default_datasets_root()
    root = os.path.abspath(os.path.expanduser(root))
    register_all_coco(root)
    register_all_ade20k(root)
    register_all_pascal(root)
