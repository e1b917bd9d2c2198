"""Detectron2 registration of the embedded shapes world (``shapes_world.py``).

Registered names, for ``{split}`` in ``train``/``val``:

==========================================  ===================  ================================
name                                        evaluator_type       dicts
==========================================  ===================  ================================
shapes_{split}_panoptic_with_sem_seg        coco_panoptic_seg    as Mask2Former's COCO panoptic
shapes_{split}_panoptic_caption_with_sem_seg coco_panoptic_seg   + captions, caption_noun_phrases
shapes_{split}_sem_seg                      sem_seg              file_name, sem_seg_file_name
shapes_{split}_instances                    coco                 detectron2 COCO instances
shapes_{split}_keypoints                    coco                 COCO keypoints (star tips)
shapes_{split}_depth                        depth                + depth_file_name, depth_scale
shapes_{split}_refexp                       refer                one dict per referred object
==========================================  ===================  ================================

Registration reads and generates nothing: metadata comes from the generator's constants, and
each loader calls :func:`ensure_shapes_world` first. The dataset root is fixed when registering
(``$ODISE_EXT_CACHE`` at that time, unless given).
"""
import functools
import os
from pathlib import Path
from typing import Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .catalog_utils import load_json
from .json_records import check_coco_instances_json, load_checked_coco_json, refuse_duplicates, require_keys
from .panoptic_sem_seg import (
    get_panoptic_metadata,
    register_panoptic_with_sem_seg,
    register_sem_seg,
)
from .shapes_world import SPLITS, ensure_shapes_world, get_shapes_root
from .shapes_world_scene import (
    DEPTH_SCALE,
    MAX_DEPTH_M,
    SHAPES_CATEGORIES,
    STAR_KEYPOINT_CONNECTION_RULES,
    STAR_KEYPOINT_FLIP_MAP,
    STAR_KEYPOINT_NAMES,
)

__all__ = [
    "SHAPES_DATASET_NAMES",
    "get_shapes_panoptic_metadata",
    "get_shapes_instances_metadata",
    "get_shapes_keypoints_metadata",
    "load_shapes_depth",
    "load_shapes_refexp",
    "register_all_shapes",
]

_KINDS = (
    "panoptic_with_sem_seg",
    "panoptic_caption_with_sem_seg",
    "sem_seg",
    "instances",
    "keypoints",
    "depth",
    "refexp",
)
SHAPES_DATASET_NAMES = tuple(f"shapes_{split}_{kind}" for split in SPLITS for kind in _KINDS)
_MISSING = "Shapes-world annotation file missing: {}"


def get_shapes_panoptic_metadata() -> Dict[str, object]:
    """Mask2Former-style class metadata (``stuff_classes`` lists all 9 classes, things first)."""
    return get_panoptic_metadata(SHAPES_CATEGORIES)


def get_shapes_instances_metadata() -> Dict[str, object]:
    """Thing metadata as detectron2's COCO loader derives it (things sorted by dataset id)."""
    things = sorted((c for c in SHAPES_CATEGORIES if c["isthing"]), key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
    }


def get_shapes_keypoints_metadata() -> Dict[str, object]:
    """Metadata of the star-keypoint datasets (one class, five tips)."""
    star = next(c for c in SHAPES_CATEGORIES if c["name"] == "star")
    return {
        "thing_classes": ["star"],
        "thing_colors": [list(star["color"])],
        "thing_dataset_id_to_contiguous_id": {star["id"]: 0},
        "keypoint_names": STAR_KEYPOINT_NAMES,
        "keypoint_flip_map": STAR_KEYPOINT_FLIP_MAP,
        "keypoint_connection_rules": STAR_KEYPOINT_CONNECTION_RULES,
    }


def _paths(root: Path, split: str) -> Dict[str, str]:
    ann = root / "annotations"
    return {k: str(v) for k, v in {
        "image_root": root / "images" / split,
        "panoptic_root": ann / f"panoptic_{split}",
        "panoptic_json": ann / f"panoptic_{split}.json",
        "sem_seg_root": ann / f"panoptic_semseg_{split}",
        "instances_json": ann / f"instances_{split}.json",
        "keypoints_json": ann / f"person_keypoints_{split}.json",
        "captions_json": ann / f"captions_{split}.json",
        "noun_phrases_json": ann / f"captions_{split}_noun_phrases.json",
        "refs_json": ann / f"refs_{split}.json",
        "depth_root": root / "depth" / split,
    }.items()}


def _largest_stuff(panoptic_json: str) -> Dict[int, str]:
    """image id -> name of its largest stuff segment (the scene's main background)."""
    stuff = {c["id"]: c["name"] for c in SHAPES_CATEGORIES if not c["isthing"]}
    scenes = {}
    for ann in load_json(panoptic_json, _MISSING.format(panoptic_json))["annotations"]:
        regions = [s for s in ann["segments_info"] if s["category_id"] in stuff]
        if regions:
            scenes[ann["image_id"]] = stuff[max(regions, key=lambda s: s["area"])["category_id"]]
    return scenes


def load_shapes_depth(root, split: str) -> List[Dict[str, object]]:
    """Depth dicts: ``file_name``, ``image_id``, ``height``, ``width``, ``depth_file_name``
    (uint16 PNG), ``depth_scale`` (PNG value / scale = metres; 0 = invalid), ``max_depth`` (m),
    ``scene`` (the largest stuff class: the scene class of VPD depth's prompt)."""
    p = _paths(Path(root), split)
    info = load_json(p["instances_json"], _MISSING.format(p["instances_json"]))
    check_coco_instances_json(str(p["instances_json"]), info)
    images = info["images"]
    scenes = _largest_stuff(p["panoptic_json"])
    return [
        {
            "file_name": os.path.join(p["image_root"], img["file_name"]),
            "image_id": img["id"],
            "height": img["height"],
            "width": img["width"],
            "depth_file_name": os.path.join(
                p["depth_root"], os.path.splitext(img["file_name"])[0] + ".png"
            ),
            "depth_scale": DEPTH_SCALE,
            "max_depth": MAX_DEPTH_M,
            "scene": scenes.get(img["id"], "sky"),
        }
        for img in images
    ]


def load_shapes_refexp(root, split: str) -> List[Dict[str, object]]:
    """One dict per referred object: ``file_name``, ``image_id``, ``height``, ``width``,
    ``ref_id``, ``ann_id``, ``category_id`` (contiguous thing id), ``sentences`` ([str]) and
    ``annotations``: the object as a one-element detectron2 instance list (XYWH_ABS box, RLE
    ``segmentation``), so detectron2's ``annotations_to_instances`` can read its mask."""
    p = _paths(Path(root), split)
    instances = load_json(p["instances_json"], _MISSING.format(p["instances_json"]))
    check_coco_instances_json(str(p["instances_json"]), instances)
    images = {img["id"]: img for img in instances["images"]}
    anns = {a["id"]: a for a in instances["annotations"]}
    to_contiguous = get_shapes_instances_metadata()["thing_dataset_id_to_contiguous_id"]
    dicts = []
    refs = load_json(p["refs_json"], _MISSING.format(p["refs_json"]))
    for i, ref in enumerate(refs):
        require_keys(ref, ("ref_id", "ann_id", "image_id", "sentences"), file=str(p["refs_json"]), what=f"ref #{i}")
    refuse_duplicates(refs, lambda r: r["ref_id"], file=str(p["refs_json"]), what="ref", key_name="ref_id")
    for ref in refs:
        if ref["ann_id"] not in anns:
            raise ValueError(f"ref {ref['ref_id']} names unknown ann_id {ref['ann_id']} "
                             f"(not in {p['instances_json']})")
        ann, img = anns[ref["ann_id"]], images[ref["image_id"]]
        category_id = to_contiguous[ann["category_id"]]
        dicts.append({
            "file_name": os.path.join(p["image_root"], img["file_name"]),
            "image_id": img["id"],
            "height": img["height"],
            "width": img["width"],
            "ref_id": ref["ref_id"],
            "ann_id": ref["ann_id"],
            "category_id": category_id,
            "sentences": [s["sent"] for s in ref["sentences"]],
            "annotations": [{
                "bbox": ann["bbox"],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": category_id,
                "segmentation": ann["segmentation"],
                "iscrowd": ann["iscrowd"],
            }],
        })
    return dicts


def _loader(root: Path, fn: Callable[..., List[dict]], *args) -> Callable[[], List[dict]]:
    """A loader that makes sure the data exist before reading them."""

    def load():
        ensure_shapes_world(root)
        return fn(*args)

    return load


def _register(name: str, load: Callable[[], List[dict]], **metadata) -> None:
    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**metadata)


def _register_split(root: Path, split: str) -> None:
    p = _paths(root, split)

    prepare = functools.partial(ensure_shapes_world, root)
    panoptic_meta = get_shapes_panoptic_metadata()
    for kind, captions in (("panoptic_with_sem_seg", {}), ("panoptic_caption_with_sem_seg", {
        "captions_json": p["captions_json"], "noun_phrases_json": p["noun_phrases_json"]
    })):
        register_panoptic_with_sem_seg(
            f"shapes_{split}_{kind}", panoptic_meta, p["image_root"], p["panoptic_root"],
            p["panoptic_json"], p["sem_seg_root"], p["instances_json"], prepare_fn=prepare,
            **captions,
        )
    register_sem_seg(
        f"shapes_{split}_sem_seg",
        {k: panoptic_meta[k] for k in ("stuff_classes", "stuff_colors",
                                       "stuff_dataset_id_to_contiguous_id")},
        p["image_root"], p["sem_seg_root"], prepare_fn=prepare,
    )
    for kind, json_key, meta in (("instances", "instances_json", get_shapes_instances_metadata()),
                                 ("keypoints", "keypoints_json", get_shapes_keypoints_metadata())):
        name = f"shapes_{split}_{kind}"
        # detectron2's loader (re)sets thing_classes and the id map in the metadata, to the
        # values set here.
        _register(
            name, _loader(root, load_checked_coco_json, p[json_key], p["image_root"], name),
            json_file=p[json_key], image_root=p["image_root"], evaluator_type="coco", **meta,
        )
    _register(
        f"shapes_{split}_depth", _loader(root, load_shapes_depth, root, split),
        image_root=p["image_root"], depth_root=p["depth_root"], depth_scale=DEPTH_SCALE,
        max_depth=MAX_DEPTH_M, evaluator_type="depth",
    )
    _register(
        f"shapes_{split}_refexp", _loader(root, load_shapes_refexp, root, split),
        json_file=p["refs_json"], instances_json=p["instances_json"], image_root=p["image_root"],
        evaluator_type="refer", **get_shapes_instances_metadata(),
    )


def register_all_shapes(root=None) -> None:
    """Register every name in ``SHAPES_DATASET_NAMES`` for data under ``root`` (default
    :func:`get_shapes_root`, resolved now). Idempotent: names already registered for the same
    root are left alone; registered for another root is an error."""
    root = Path(root).expanduser().absolute() if root is not None else get_shapes_root()
    registered = [n for n in SHAPES_DATASET_NAMES if n in DatasetCatalog]
    for name in registered:
        split = name.split("_")[1]
        expected = _paths(root, split)["image_root"]
        found = MetadataCatalog.get(name).get("image_root")
        if found != expected:
            raise ValueError(
                f"Dataset {name} is already registered with images at {found}, not {expected}; "
                "set ODISE_EXT_CACHE before importing odise_ext, or remove the registration first"
            )
    if len(registered) == len(SHAPES_DATASET_NAMES):
        return
    if registered:
        raise ValueError(f"Shapes datasets are partially registered ({registered}); "
                         "remove them before registering again")
    for split in SPLITS:
        _register_split(root, split)
