"""Class lists of the real benchmarks, as plain data.

Every list holds one dict per class, in contiguous-id order (the label value written by the
``datasets/prepare_*.py`` scripts, and the model's class index)::

    {"id": int, "name": str, "synonyms": tuple[str, ...], "color": [r, g, b], ...}

- ``name`` is the dataset's own class name (display name, Mask2Former's convention);
- ``synonyms`` are the names ODISE classifies with: its prompt-engineered OpenSeg label lists
  (``*_with_prompt_eng.txt``), which split WordNet-style names such as ``"building, edifice"``
  into synonyms and add plurals and common variants. Logits are max-ensembled over them.
- dataset-specific keys: ``isthing`` (ADE20K-150), ``ade_id`` (ADE20K-847: index in the full
  ADE20K object list), ``context_id`` (PASCAL-Context: value in the official ``.mat`` label
  maps).

Colours are for visualisation only.
"""
from typing import Dict, Sequence

from ._utils import parse_synonyms
from .ade20k_150 import ADE20K_150_CATEGORIES, ADE20K_INSTANCE_TO_SEMANTIC
from .ade20k_847 import ADE20K_847_CATEGORIES
from .coco_panoptic import COCO_PANOPTIC_SYNONYMS
from .pascal_context_59 import PASCAL_CONTEXT_59_CATEGORIES
from .pascal_context_459 import PASCAL_CONTEXT_459_CATEGORIES
from .pascal_voc_21 import PASCAL_VOC_21_CATEGORIES

__all__ = [
    "ADE20K_150_CATEGORIES",
    "ADE20K_847_CATEGORIES",
    "ADE20K_INSTANCE_TO_SEMANTIC",
    "COCO_PANOPTIC_SYNONYMS",
    "PASCAL_CONTEXT_59_CATEGORIES",
    "PASCAL_CONTEXT_459_CATEGORIES",
    "PASCAL_VOC_21_CATEGORIES",
    "parse_synonyms",
    "semantic_metadata",
]


def semantic_metadata(categories: Sequence[Dict]) -> Dict[str, object]:
    """detectron2 metadata of a semantic-segmentation class list (contiguous ids = ``id``).

    ``stuff_synonyms`` is aligned with ``stuff_classes``; ``thing_dataset_id_to_contiguous_id``
    is empty, as Mask2Former-style models expect for pure semantic datasets.
    """
    ids = [c["id"] for c in categories]
    if ids != list(range(len(categories))):
        raise ValueError("Semantic class lists must have ids 0..K-1 in order")
    return {
        "stuff_classes": [c["name"] for c in categories],
        "stuff_colors": [list(c["color"]) for c in categories],
        "stuff_synonyms": [list(c["synonyms"]) for c in categories],
        "stuff_dataset_id_to_contiguous_id": {i: i for i in ids},
        "thing_dataset_id_to_contiguous_id": {},
    }

