"""ADE20K-150 (panoptic, semantic, instance) and ADE20K-847 under ``$DETECTRON2_DATASETS/ade``.

Registered names, for ``{split}`` in ``train`` / ``val`` (:func:`register_all_ade20k`; Mask2Former's
names):

==============================  ===================  ===========================================
name                            evaluator_type       content
==============================  ===================  ===========================================
ade20k_panoptic_{split}         ade20k_panoptic_seg  150 classes (100 things); PQ + mIoU + mAP
ade20k_sem_seg_{split}          sem_seg              150 classes
ade20k_instance_{split}         coco                 the 100 thing classes
ade20k_full_sem_seg_{split}     sem_seg              847 classes, uint16 TIFF labels (65535 void)
==============================  ===================  ===========================================

Layout (ODISE's; the ``*detectron2*``, ``ade20k_panoptic_*`` and ``ade20k_instance_*`` entries are
written by the ``datasets/prepare_ade20k_*.py`` scripts)::

    ade/ADEChallengeData2016/
        images/{training,validation}/*.jpg
        annotations/{training,validation}/*.png            (official, 0 = other)
        annotations_instance/{training,validation}/*.png   (official instance release)
        annotations_detectron2/{training,validation}/*.png
        ade20k_panoptic_{train,val}/*.png, ade20k_panoptic_{train,val}.json
        ade20k_instance_{train,val}.json
    ade/ADE20K_2021_17_01/
        index_ade20k.pkl, images/ADE/...                   (official full release)
        images_detectron2/{training,validation}/*.jpg
        annotations_detectron2/{training,validation}/*.tif

ADE20K image ids are file stems (``"ADE_val_00000001"``), kept as strings as in Mask2Former so
that predictions match the prepared panoptic and instance jsons.
"""
import functools
import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from .catalog_utils import load_json, register_once, register_sem_seg_files, require_paths
from .json_records import check_coco_instances_json, check_panoptic_json, require_keys
from .categories import ADE20K_150_CATEGORIES, ADE20K_847_CATEGORIES, semantic_metadata
from .panoptic_sem_seg import get_panoptic_metadata, register_sem_seg

__all__ = [
    "ADE20K_DATASET_NAMES",
    "ADE20K_SOURCES",
    "ade20k_paths",
    "get_ade20k_instance_metadata",
    "get_ade20k_panoptic_metadata",
    "load_ade20k_instances",
    "load_ade20k_panoptic_json",
    "register_all_ade20k",
]

# split name in dataset names -> directory name of the official release
ADE20K_SPLITS = {"train": "training", "val": "validation"}
ADE20K_DATASET_NAMES = tuple(
    f"ade20k_{kind}_{split}"
    for split in ADE20K_SPLITS
    for kind in ("panoptic", "sem_seg", "instance", "full_sem_seg")
)

_SCENE_PARSING_ZIP = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"
_INSTANCE_TAR = "http://sceneparsing.csail.mit.edu/data/ChallengeData2017/annotations_instance.tar"

# How to obtain each input, shown when it is missing: {key of ade20k_paths(): text}.
ADE20K_SOURCES = {
    "image_root": f"ADE20K-150: download {_SCENE_PARSING_ZIP} and unzip it into ade/",
    "annotations": f"ADE20K-150: download {_SCENE_PARSING_ZIP} and unzip it into ade/",
    "instance_annotations": f"ADE20K instance annotations: download {_INSTANCE_TAR} and extract "
                            "it into ade/ADEChallengeData2016/",
    "sem_seg_root": "run: python datasets/prepare_ade20k_sem_seg.py",
    "panoptic_root": "run: python datasets/prepare_ade20k_panoptic.py",
    "panoptic_json": "run: python datasets/prepare_ade20k_panoptic.py",
    "instances_json": "run: python datasets/prepare_ade20k_panoptic.py",
    "full_index": "ADE20K full (ADE20K_2021_17_01): register and download it from "
                  "https://groups.csail.mit.edu/vision/datasets/ADE20K/ , unzip it into ade/",
    "full_image_root": "run: python datasets/prepare_ade20k_full.py",
    "full_sem_seg_root": "run: python datasets/prepare_ade20k_full.py",
}


def ade20k_paths(root: str, split: str) -> Dict[str, str]:
    """Absolute paths of the ADE20K files of ``split`` (``train``/``val``) under ``root``."""
    ade = os.path.join(root, "ade", "ADEChallengeData2016")
    full = os.path.join(root, "ade", "ADE20K_2021_17_01")
    d = ADE20K_SPLITS[split]
    return {
        "image_root": os.path.join(ade, "images", d),
        "annotations": os.path.join(ade, "annotations", d),
        "instance_annotations": os.path.join(ade, "annotations_instance", d),
        "sem_seg_root": os.path.join(ade, "annotations_detectron2", d),
        "panoptic_root": os.path.join(ade, f"ade20k_panoptic_{split}"),
        "panoptic_json": os.path.join(ade, f"ade20k_panoptic_{split}.json"),
        "instances_json": os.path.join(ade, f"ade20k_instance_{split}.json"),
        "full_root": full,
        "full_index": os.path.join(full, "index_ade20k.pkl"),
        "full_image_root": os.path.join(full, "images_detectron2", d),
        "full_sem_seg_root": os.path.join(full, "annotations_detectron2", d),
    }


def _synonyms(categories) -> List[List[str]]:
    return [list(c["synonyms"]) for c in categories]


def get_ade20k_panoptic_metadata() -> Dict[str, object]:
    """Mask2Former's ADE20K panoptic metadata (dataset id = contiguous id = class index) plus
    ODISE's synonyms."""
    meta = get_panoptic_metadata(ADE20K_150_CATEGORIES)
    meta["stuff_synonyms"] = _synonyms(ADE20K_150_CATEGORIES)
    meta["thing_synonyms"] = _synonyms(c for c in ADE20K_150_CATEGORIES if c["isthing"])
    return meta


def get_ade20k_instance_metadata() -> Dict[str, object]:
    """The 100 thing classes, contiguous ids 0..99 in class order (Mask2Former)."""
    things = [c for c in ADE20K_150_CATEGORIES if c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
        "thing_synonyms": _synonyms(things),
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
    }


def load_ade20k_panoptic_json(
    json_file: str, image_root: str, panoptic_root: str, sem_seg_root: str, metadata: Dict
) -> List[Dict]:
    """Dicts of a prepared ADE20K panoptic json (``file_name``, ``image_id`` (str),
    ``pan_seg_file_name``, ``sem_seg_file_name``, ``segments_info`` with contiguous
    ``category_id`` and ``isthing``). Raises ``ValueError`` on an unknown category id."""
    info = load_json(json_file)
    require_keys(info, ("annotations",), file=json_file, what="the file")
    check_panoptic_json(info, json_file)
    thing_map = metadata["thing_dataset_id_to_contiguous_id"]
    stuff_map = metadata["stuff_dataset_id_to_contiguous_id"]
    dicts = []
    for ann in info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        segments = []
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            if cat not in stuff_map:
                raise ValueError(f"Unknown category_id {cat} in image {ann['image_id']} of "
                                 f"{json_file}; expected 0..{len(stuff_map) - 1}")
            isthing = cat in thing_map
            contiguous = thing_map[cat] if isthing else stuff_map[cat]
            segments.append({**seg, "category_id": contiguous, "isthing": isthing})
        dicts.append({
            "file_name": os.path.join(image_root, stem + ".jpg"),
            "image_id": ann["image_id"],
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "sem_seg_file_name": os.path.join(sem_seg_root, stem + ".png"),
            "segments_info": segments,
        })
    if not dicts:
        raise ValueError(f"No annotations in {json_file}")
    return dicts


def load_ade20k_instances(json_file: str, image_root: str, metadata: Dict) -> List[Dict]:
    """detectron2 instance dicts of a prepared ``ade20k_instance_*.json``, with contiguous thing
    ids. The class names of the json are not used (they may differ in spelling between
    preparation scripts); ids are checked against the metadata instead."""
    check_coco_instances_json(json_file)
    dicts = load_coco_json(json_file, image_root, dataset_name=None)
    thing_map = metadata["thing_dataset_id_to_contiguous_id"]
    for d in dicts:
        for ann in d.get("annotations", []):
            if ann["category_id"] not in thing_map:
                raise ValueError(f"Category id {ann['category_id']} of image {d['image_id']} in "
                                 f"{json_file} is not an ADE20K thing class "
                                 f"(expected one of {sorted(thing_map)})")
            ann["category_id"] = thing_map[ann["category_id"]]
    return dicts


def _check(name: str, paths: Dict[str, str], keys) -> functools.partial:
    return functools.partial(require_paths, name, [(paths[k], ADE20K_SOURCES[k]) for k in keys])


def _register_panoptic(name: str, p: Dict[str, str]) -> None:
    meta = get_ade20k_panoptic_metadata()
    check = _check(name, p, ("image_root", "panoptic_json", "panoptic_root", "sem_seg_root"))

    def load():
        check()
        return load_ade20k_panoptic_json(
            p["panoptic_json"], p["image_root"], p["panoptic_root"], p["sem_seg_root"], meta
        )

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        panoptic_root=p["panoptic_root"],
        image_root=p["image_root"],
        panoptic_json=p["panoptic_json"],
        sem_seg_root=p["sem_seg_root"],
        json_file=p["instances_json"],  # instance evaluation's ground truth
        evaluator_type="ade20k_panoptic_seg",
        ignore_label=255,
        label_divisor=1000,
        **meta,
    )


def _register_instance(name: str, p: Dict[str, str]) -> None:
    meta = get_ade20k_instance_metadata()
    check = _check(name, p, ("image_root", "instances_json"))

    def load():
        check()
        return load_ade20k_instances(p["instances_json"], p["image_root"], meta)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        json_file=p["instances_json"], image_root=p["image_root"], evaluator_type="coco", **meta
    )


def register_all_ade20k(root: str) -> None:
    """Register :data:`ADE20K_DATASET_NAMES` for data under ``root`` (absolute); reads nothing.
    Names already registered for ``root`` are kept (see ``register_once``)."""
    for split in ADE20K_SPLITS:
        p = ade20k_paths(root, split)
        name = f"ade20k_sem_seg_{split}"
        register_once(name, root, functools.partial(
            register_sem_seg, name, semantic_metadata(ADE20K_150_CATEGORIES), p["image_root"],
            p["sem_seg_root"], prepare_fn=_check(name, p, ("image_root", "sem_seg_root")),
        ))
        name = f"ade20k_full_sem_seg_{split}"
        register_once(name, root, functools.partial(
            register_sem_seg_files, name, semantic_metadata(ADE20K_847_CATEGORIES),
            p["full_image_root"], p["full_sem_seg_root"], gt_ext="tif", ignore_label=65535,
            prepare_fn=_check(name, p, ("full_image_root", "full_sem_seg_root")),
        ))
        name = f"ade20k_panoptic_{split}"
        register_once(name, root, functools.partial(_register_panoptic, name, p))
        name = f"ade20k_instance_{split}"
        register_once(name, root, functools.partial(_register_instance, name, p))
