"""COCO panoptic (+ semantic, + captions) under ``$DETECTRON2_DATASETS/coco``.

Registered names, for ``{split}`` in ``train`` / ``val`` (:func:`register_all_coco`):

================================================  =================  ============================
name                                              evaluator_type     dicts
================================================  =================  ============================
coco_2017_{split}_panoptic_with_sem_seg           coco_panoptic_seg  Mask2Former's (same name)
coco_2017_{split}_panoptic_caption_with_sem_seg   coco_panoptic_seg  + captions,
                                                                     caption_noun_phrases
================================================  =================  ============================

Layout (official names; ``panoptic_semseg_*`` and the noun-phrase json are made by the
``datasets/prepare_coco_*.py`` scripts)::

    coco/{train,val}2017/*.jpg
    coco/panoptic_{train,val}2017/*.png
    coco/panoptic_semseg_{train,val}2017/*.png
    coco/annotations/panoptic_{train,val}2017.json
    coco/annotations/instances_{train,val}2017.json    (instance evaluation on val)
    coco/annotations/captions_{train,val}2017.json
    coco/annotations/captions_{train,val}2017_noun_phrases.json

Metadata follows Mask2Former (``stuff_*`` = all 133 classes) and adds ``stuff_synonyms`` /
``thing_synonyms``: ODISE's prompt-engineered names of each class.
"""
import functools
import os
from typing import Dict

from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

from .catalog_utils import register_once, require_paths
from .categories import COCO_PANOPTIC_SYNONYMS
from .panoptic_sem_seg import get_panoptic_metadata, register_panoptic_with_sem_seg

__all__ = [
    "COCO_DATASET_NAMES",
    "COCO_SOURCES",
    "coco_paths",
    "get_coco_panoptic_metadata",
    "register_all_coco",
]

COCO_SPLITS = ("train", "val")
COCO_DATASET_NAMES = tuple(
    f"coco_2017_{split}_{kind}"
    for split in COCO_SPLITS
    for kind in ("panoptic_with_sem_seg", "panoptic_caption_with_sem_seg")
)

_ANNOTATIONS_ZIP = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
_PANOPTIC_ZIP = "http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip"

# How to obtain each input, shown when it is missing: {key of coco_paths(): text with {split}}.
COCO_SOURCES = {
    "image_root": "COCO images: download http://images.cocodataset.org/zips/{split}2017.zip "
                  "and unzip it into coco/",
    "panoptic_json": f"COCO panoptic annotations: download {_PANOPTIC_ZIP} and unzip it into "
                     "coco/",
    "panoptic_root": f"COCO panoptic PNGs: after unzipping {_PANOPTIC_ZIP}, unzip "
                     "coco/annotations/panoptic_{split}2017.zip into coco/",
    "sem_seg_root": "run: python datasets/prepare_coco_semantic_from_panoptic.py",
    "instances_json": f"COCO instance annotations: download {_ANNOTATIONS_ZIP} and unzip it "
                      "into coco/",
    "captions_json": f"COCO captions: download {_ANNOTATIONS_ZIP} and unzip it into coco/",
    "noun_phrases_json": "run: python datasets/prepare_coco_caption_phrases.py "
                         "(needs NLTK and its tagger data, see datasets/README.md)",
}


def coco_paths(root: str, split: str) -> Dict[str, str]:
    """Absolute paths of the COCO 2017 files of ``split`` under datasets root ``root``."""
    coco = os.path.join(root, "coco")
    ann = os.path.join(coco, "annotations")
    return {
        "image_root": os.path.join(coco, f"{split}2017"),
        "panoptic_root": os.path.join(coco, f"panoptic_{split}2017"),
        "panoptic_json": os.path.join(ann, f"panoptic_{split}2017.json"),
        "sem_seg_root": os.path.join(coco, f"panoptic_semseg_{split}2017"),
        "instances_json": os.path.join(ann, f"instances_{split}2017.json"),
        "captions_json": os.path.join(ann, f"captions_{split}2017.json"),
        "noun_phrases_json": os.path.join(ann, f"captions_{split}2017_noun_phrases.json"),
    }


def get_coco_panoptic_metadata() -> Dict[str, object]:
    """Mask2Former's COCO panoptic metadata plus ODISE's synonyms (aligned with the classes)."""
    meta = get_panoptic_metadata(COCO_CATEGORIES)
    meta["stuff_synonyms"] = [list(COCO_PANOPTIC_SYNONYMS[c["id"]]) for c in COCO_CATEGORIES]
    meta["thing_synonyms"] = [
        list(COCO_PANOPTIC_SYNONYMS[c["id"]]) for c in COCO_CATEGORIES if c["isthing"]
    ]
    return meta


def _required(paths: Dict[str, str], split: str, keys) -> list:
    return [(paths[k], COCO_SOURCES[k].format(split=split)) for k in keys]


def register_all_coco(root: str) -> None:
    """Register :data:`COCO_DATASET_NAMES` for data under ``root`` (absolute); reads nothing.
    Names already registered for ``root`` are kept (see ``register_once``)."""
    meta = get_coco_panoptic_metadata()
    for split in COCO_SPLITS:
        p = coco_paths(root, split)
        keys = ["image_root", "panoptic_json", "panoptic_root", "sem_seg_root"]
        if split == "val":
            keys.append("instances_json")  # the instance evaluator's ground truth
        for kind, extra_keys, captions in (
            ("panoptic_with_sem_seg", [], {}),
            ("panoptic_caption_with_sem_seg", ["captions_json", "noun_phrases_json"], {
                "captions_json": p["captions_json"],
                "noun_phrases_json": p["noun_phrases_json"],
            }),
        ):
            name = f"coco_2017_{split}_{kind}"
            check = functools.partial(require_paths, name, _required(p, split, keys + extra_keys))
            register_once(name, root, functools.partial(
                register_panoptic_with_sem_seg, name, meta, p["image_root"], p["panoptic_root"],
                p["panoptic_json"], p["sem_seg_root"], p["instances_json"],
                evaluator_type="coco_panoptic_seg", prepare_fn=check, **captions,
            ))
