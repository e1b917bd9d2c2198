"""COCO-format panoptic datasets with semantic-segmentation PNGs, as detectron2 dicts.

Generic (paths and metadata in, no dataset knowledge): shared by the shapes world, COCO and
ADE20K. Follows Mask2Former's ``coco_2017_{split}_panoptic_with_sem_seg`` conventions exactly:

- Contiguous ids index the full category list (things and stuff together, in the given order).
- ``stuff_classes`` / ``stuff_colors`` / ``stuff_dataset_id_to_contiguous_id`` cover **all**
  categories, things included, so that semantic-segmentation evaluation sees every class;
  ``thing_*`` cover the things only (with the same contiguous ids).
- Each dataset dict holds ``file_name``, ``image_id``, ``pan_seg_file_name``,
  ``sem_seg_file_name`` and ``segments_info`` (category ids converted to contiguous ids, plus
  ``isthing``); caption datasets add ``captions`` and ``caption_noun_phrases``.
"""
import os
from typing import Callable, Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg

from .catalog_utils import load_json
from .json_records import check_panoptic_json, refuse_duplicates, require_keys

__all__ = [
    "get_panoptic_metadata",
    "load_panoptic_json_with_sem_seg",
    "load_coco_captions",
    "register_panoptic_with_sem_seg",
    "register_sem_seg",
]


def get_panoptic_metadata(categories: Sequence[Dict]) -> Dict[str, object]:
    """Mask2Former-style metadata from COCO panoptic ``categories``.

    Args:
        categories: dicts with ``id``, ``name``, ``isthing`` and ``color``; their order defines
            the contiguous ids.
    """
    for c in categories:
        missing = {"id", "name", "isthing", "color"} - set(c)
        if missing:
            raise ValueError(f"Category {c} lacks the keys {sorted(missing)}")
    things = [c for c in categories if c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
        # Mask2Former convention: "stuff" lists every class (things too), in contiguous order.
        "stuff_classes": [c["name"] for c in categories],
        "stuff_colors": [list(c["color"]) for c in categories],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def load_panoptic_json_with_sem_seg(
    json_file: str,
    image_root: str,
    panoptic_root: str,
    sem_seg_root: str,
    metadata: Dict[str, object],
    *,
    image_ext: str = ".jpg",
) -> List[Dict[str, object]]:
    """Read a COCO panoptic json into detectron2 dicts (one per annotated image).

    Images, panoptic PNGs and semantic PNGs share the annotation's file stem. Raises
    ``FileNotFoundError`` for a missing json or first file, ``ValueError`` for a json that is
    not JSON or a category id the metadata or the json's ``categories`` do not know. Every
    file is checked when the dataset is loaded for a run (``odise_ext.data.validation``).
    """
    info = load_json(json_file, f"Panoptic json not found: {json_file}")
    for key in ("annotations", "categories"):
        if key not in info:
            raise ValueError(f"{json_file}: missing key {key!r} of the COCO panoptic format")
    check_panoptic_json(info, json_file)
    thing_map = metadata["thing_dataset_id_to_contiguous_id"]
    stuff_map = metadata["stuff_dataset_id_to_contiguous_id"]
    # the panoptic evaluator scores by the json's own category list
    listed = {c["id"] for c in info["categories"]}
    dicts = []
    for ann in info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        segments_info = []
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            if cat not in stuff_map and cat not in thing_map:
                raise ValueError(
                    f"Unknown category_id {cat} in image {ann['image_id']} of {json_file}; "
                    f"known ids: {sorted(stuff_map)}"
                )
            if cat not in listed:
                raise ValueError(
                    f"category_id {cat} of image {ann['image_id']} is not in the 'categories' list of {json_file}"
                )
            isthing = cat in thing_map
            contiguous = thing_map[cat] if isthing else stuff_map[cat]
            segments_info.append({**seg, "category_id": contiguous, "isthing": isthing})
        dicts.append({
            "file_name": os.path.join(image_root, stem + image_ext),
            "image_id": int(ann["image_id"]),
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "sem_seg_file_name": os.path.join(sem_seg_root, stem + ".png"),
            "segments_info": segments_info,
        })
    if not dicts:
        raise ValueError(f"No annotations in {json_file}")
    for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
        if not os.path.isfile(dicts[0][key]):  # checking one file catches a wrong root cheaply
            raise FileNotFoundError(f"{key} of image {dicts[0]['image_id']} missing: "
                                    f"{dicts[0][key]}")
    return dicts


def load_coco_captions(
    captions_json: str, noun_phrases_json: Optional[str] = None
) -> Dict[int, Dict[str, list]]:
    """``{image_id: {"captions": [str], "caption_noun_phrases": [[str]]}}`` from COCO captions.

    ``noun_phrases_json`` maps ``str(caption_id)`` to that caption's noun phrases; without it
    the ``caption_noun_phrases`` key is absent (phrases are then extracted downstream).
    """
    info = load_json(captions_json, f"Captions json not found: {captions_json}")
    phrases = None
    if noun_phrases_json is not None:
        phrases = load_json(noun_phrases_json, f"Caption noun-phrase json not found: {noun_phrases_json}")
    require_keys(info, ("annotations",), file=captions_json, what="the file")
    for i, ann in enumerate(info["annotations"]):
        require_keys(ann, ("id", "image_id", "caption"), file=captions_json, what=f"annotations #{i}")
    refuse_duplicates(info["annotations"], lambda a: a["id"], file=captions_json, what="annotations", key_name="id")
    out: Dict[int, Dict[str, list]] = {}
    for ann in sorted(info["annotations"], key=lambda a: a["id"]):
        entry = out.setdefault(int(ann["image_id"]), {"captions": []})
        entry["captions"].append(ann["caption"])
        if phrases is not None:
            if str(ann["id"]) not in phrases:
                raise ValueError(f"Caption {ann['id']} has no entry in {noun_phrases_json}")
            entry.setdefault("caption_noun_phrases", []).append(list(phrases[str(ann["id"])]))
    return out


def _load_with_captions(captions_json, noun_phrases_json, *args, **kwargs):
    dicts = load_panoptic_json_with_sem_seg(*args, **kwargs)
    captions = load_coco_captions(captions_json, noun_phrases_json)
    for d in dicts:
        if d["image_id"] not in captions:
            raise ValueError(f"Image {d['image_id']} has no caption in {captions_json}")
        d.update(captions[d["image_id"]])
    return dicts


def register_panoptic_with_sem_seg(
    name: str,
    metadata: Dict[str, object],
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: str,
    instances_json: Optional[str] = None,
    *,
    captions_json: Optional[str] = None,
    noun_phrases_json: Optional[str] = None,
    evaluator_type: str = "coco_panoptic_seg",
    prepare_fn: Optional[Callable[[], object]] = None,
) -> None:
    """Register ``name`` (e.g. ``coco_2017_train_panoptic_with_sem_seg``); reads nothing now.

    Args:
        metadata: from :func:`get_panoptic_metadata`.
        captions_json, noun_phrases_json: when given, each dict also gets ``captions`` (and
            ``caption_noun_phrases``), as ODISE's ``*_panoptic_caption_with_sem_seg`` sets.
        prepare_fn: called before loading (e.g. to generate or download the data).
    """
    args = (panoptic_json, image_root, panoptic_root, sem_seg_root, metadata)

    def load():
        if prepare_fn is not None:
            prepare_fn()
        if captions_json is None:
            return load_panoptic_json_with_sem_seg(*args)
        return _load_with_captions(captions_json, noun_phrases_json, *args)

    DatasetCatalog.register(name, load)
    extra = {} if captions_json is None else {"caption_json": captions_json}
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        json_file=instances_json,
        evaluator_type=evaluator_type,
        ignore_label=255,
        label_divisor=1000,
        **extra,
        **metadata,
    )


def register_sem_seg(
    name: str,
    metadata: Dict[str, object],
    image_root: str,
    sem_seg_root: str,
    *,
    prepare_fn: Optional[Callable[[], object]] = None,
) -> None:
    """Register a semantic-segmentation dataset (detectron2 ``load_sem_seg`` dicts: file_name,
    sem_seg_file_name) with ``evaluator_type="sem_seg"`` and ``ignore_label=255``.

    Args:
        metadata: needs ``stuff_classes`` (every class, by contiguous id); other keys pass on.
    """
    if "stuff_classes" not in metadata:
        raise ValueError(f"Semantic segmentation metadata of {name} needs 'stuff_classes'")

    def load():
        if prepare_fn is not None:
            prepare_fn()
        return load_sem_seg(sem_seg_root, image_root, gt_ext="png", image_ext="jpg")

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        image_root=image_root,
        sem_seg_root=sem_seg_root,
        evaluator_type="sem_seg",
        ignore_label=255,
        **metadata,
    )
