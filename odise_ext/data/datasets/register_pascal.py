"""PASCAL-Context (59 and 459 classes) and PASCAL VOC 2012 (21 classes), ODISE's names.

Registered names, for ``{split}`` in ``train`` / ``val`` (:func:`register_all_pascal`; all
``evaluator_type="sem_seg"``; ODISE evaluates the ``val`` splits):

===========================  =====  ===============================================
name                         K      labels
===========================  =====  ===============================================
ctx59_sem_seg_{split}        59     ``pascal_ctx_d2/annotations_ctx59``, uint8 PNG, 255 void
ctx459_sem_seg_{split}       459    ``pascal_ctx_d2/annotations_ctx459``, uint16 TIFF, 65535 void
pascal21_sem_seg_{split}     21     ``pascal_voc_d2/annotations_pascal21``, uint8 PNG, 255 void
===========================  =====  ===============================================

Images are ``pascal_ctx_d2/images/{training,validation}/*.jpg`` and
``pascal_voc_d2/images/{training,validation}/*.jpg``; all of it is written by
``datasets/prepare_pascal_context.py`` and ``datasets/prepare_pascal_voc.py`` from the official
``VOCdevkit`` downloads.
"""
import functools
import os
from typing import Dict

from .catalog_utils import register_once, register_sem_seg_files, require_paths
from .categories import (
    PASCAL_CONTEXT_59_CATEGORIES,
    PASCAL_CONTEXT_459_CATEGORIES,
    PASCAL_VOC_21_CATEGORIES,
    semantic_metadata,
)
from .panoptic_sem_seg import register_sem_seg

__all__ = ["PASCAL_DATASET_NAMES", "PASCAL_SOURCES", "pascal_paths", "register_all_pascal"]

PASCAL_SPLITS = {"train": "training", "val": "validation"}
PASCAL_DATASET_NAMES = tuple(
    f"{kind}_sem_seg_{split}" for split in PASCAL_SPLITS for kind in ("ctx59", "ctx459", "pascal21")
)

_VOC2010_TAR = "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar"
_VOC2012_TAR = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
_CONTEXT_TAR = "https://www.cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz"

# How to obtain each input, shown when it is missing: {key of pascal_paths(): text with {split}}.
PASCAL_SOURCES = {
    "voc2010_images": f"PASCAL VOC 2010: download {_VOC2010_TAR} and extract it into the datasets "
                      "root (creates VOCdevkit/VOC2010)",
    "voc2010_split": f"PASCAL VOC 2010 image lists: download {_VOC2010_TAR} and extract it into "
                     "the datasets root",
    "context_labels": f"PASCAL-Context annotations: download {_CONTEXT_TAR} and extract it into "
                      "VOCdevkit/VOC2010/ (creates VOCdevkit/VOC2010/trainval/*.mat)",
    "voc2012_images": f"PASCAL VOC 2012: download {_VOC2012_TAR} and extract it into the datasets "
                      "root (creates VOCdevkit/VOC2012)",
    "voc2012_labels": f"PASCAL VOC 2012: download {_VOC2012_TAR} and extract it into the datasets "
                      "root (creates VOCdevkit/VOC2012)",
    "voc2012_split": f"PASCAL VOC 2012: download {_VOC2012_TAR} and extract it into the datasets "
                     "root (creates VOCdevkit/VOC2012)",
    "ctx_image_root": "run: python datasets/prepare_pascal_context.py",
    "ctx59_root": "run: python datasets/prepare_pascal_context.py",
    "ctx459_root": "run: python datasets/prepare_pascal_context.py",
    "voc_image_root": "run: python datasets/prepare_pascal_voc.py",
    "voc_root": "run: python datasets/prepare_pascal_voc.py",
}


def pascal_paths(root: str, split: str) -> Dict[str, str]:
    """Absolute paths of the official and prepared PASCAL files of ``split`` (train/val)."""
    d = PASCAL_SPLITS[split]
    voc2010 = os.path.join(root, "VOCdevkit", "VOC2010")
    voc2012 = os.path.join(root, "VOCdevkit", "VOC2012")
    ctx = os.path.join(root, "pascal_ctx_d2")
    voc = os.path.join(root, "pascal_voc_d2")
    return {
        # official downloads
        "voc2010_images": os.path.join(voc2010, "JPEGImages"),
        # PASCAL-Context's train/val split is VOC 2010's detection ("Main") split
        "voc2010_split": os.path.join(voc2010, "ImageSets", "Main", f"{split}.txt"),
        "context_labels": os.path.join(voc2010, "trainval"),
        "voc2012_images": os.path.join(voc2012, "JPEGImages"),
        "voc2012_labels": os.path.join(voc2012, "SegmentationClass"),
        "voc2012_split": os.path.join(voc2012, "ImageSets", "Segmentation", f"{split}.txt"),
        # prepared
        "ctx_image_root": os.path.join(ctx, "images", d),
        "ctx59_root": os.path.join(ctx, "annotations_ctx59", d),
        "ctx459_root": os.path.join(ctx, "annotations_ctx459", d),
        "voc_image_root": os.path.join(voc, "images", d),
        "voc_root": os.path.join(voc, "annotations_pascal21", d),
    }


def _check(name: str, paths: Dict[str, str], keys) -> functools.partial:
    return functools.partial(require_paths, name, [(paths[k], PASCAL_SOURCES[k]) for k in keys])


def register_all_pascal(root: str) -> None:
    """Register :data:`PASCAL_DATASET_NAMES` for data under ``root`` (absolute); reads nothing.
    Names already registered for ``root`` are kept (see ``register_once``)."""
    for split in PASCAL_SPLITS:
        p = pascal_paths(root, split)
        name = f"ctx59_sem_seg_{split}"
        register_once(name, root, functools.partial(
            register_sem_seg, name, semantic_metadata(PASCAL_CONTEXT_59_CATEGORIES),
            p["ctx_image_root"], p["ctx59_root"],
            prepare_fn=_check(name, p, ("ctx_image_root", "ctx59_root")),
        ))
        name = f"ctx459_sem_seg_{split}"
        register_once(name, root, functools.partial(
            register_sem_seg_files, name, semantic_metadata(PASCAL_CONTEXT_459_CATEGORIES),
            p["ctx_image_root"], p["ctx459_root"], gt_ext="tif", ignore_label=65535,
            prepare_fn=_check(name, p, ("ctx_image_root", "ctx459_root")),
        ))
        name = f"pascal21_sem_seg_{split}"
        register_once(name, root, functools.partial(
            register_sem_seg, name, semantic_metadata(PASCAL_VOC_21_CATEGORIES),
            p["voc_image_root"], p["voc_root"],
            prepare_fn=_check(name, p, ("voc_image_root", "voc_root")),
        ))
