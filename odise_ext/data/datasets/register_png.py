"""Panoptic Narrative Grounding (PNG) datasets: one detectron2 dataset dict per narrative.

Registered names (:func:`register_all_png`, idempotent; nothing is read until a dataset is
loaded through ``DatasetCatalog.get``):

- ``png_coco_{train,val}2017``: the official benchmark under ``$DETECTRON2_DATASETS``::

      coco/annotations/png_coco_{split}2017.json      (PNG narratives)
      coco/annotations/panoptic_{split}2017.json      (COCO panoptic)
      coco/panoptic_{split}2017/*.png
      coco/{split}2017/*.jpg

- ``png_shapes_{train,val}``: the embedded shapes world (generated on first load).

Phrases are linked to panoptic segments **by segment id** (``segments_info[*]["id"]``, i.e.
R + 256·G + 256²·B in the panoptic PNG). A *grounded phrase* is an utterance with
``noun: true`` and at least one segment id; only those are kept (the official evaluation
scores exactly these). Each dataset dict::

    file_name, pan_seg_file_name: image and panoptic PNG paths
    image_id (int), height, width, annotator_id, narrative_index (position in the json)
    caption (str)
    phrases: list of {
        text: the utterance,  char_span: (start, end) in caption,
        segment_ids: [int],   plural: >= 2 distinct segments (the json "plural" flag is ignored),
        isthing, category_id: from the phrase's LAST segment (category_id is contiguous),
    }
"""
import logging
import os
from typing import Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..phrases import locate_utterances
from .catalog_utils import load_json
from .json_records import check_panoptic_json, refuse_duplicates

__all__ = [
    "PNG_COCO_SPLITS",
    "load_png_narratives",
    "panoptic_category_metadata",
    "register_all_png",
    "register_png_dataset",
    "validate_narrative",
]

logger = logging.getLogger(__name__)

# name -> (png json, panoptic json, panoptic PNG dir, image dir), relative to $DETECTRON2_DATASETS
PNG_COCO_SPLITS = {
    f"png_coco_{split}2017": (
        f"coco/annotations/png_coco_{split}2017.json",
        f"coco/annotations/panoptic_{split}2017.json",
        f"coco/panoptic_{split}2017",
        f"coco/{split}2017",
    )
    for split in ("train", "val")
}
_SHAPES_SPLITS = ("train", "val")
_NARRATIVE_KEYS = ("image_id", "annotator_id", "caption", "segments")
_SEGMENT_KEYS = ("utterance", "segment_ids", "noun")


def _narrative_name(index: int, narr) -> str:
    if isinstance(narr, dict):
        ids = f"image_id={narr.get('image_id')!r}, annotator_id={narr.get('annotator_id')!r}"
        return f"narrative #{index} ({ids})"
    return f"narrative #{index}"


def panoptic_category_metadata(categories: List[dict]) -> Dict[str, object]:
    """detectron2 metadata of panoptic categories, Mask2Former convention.

    Contiguous ids number ALL categories in increasing dataset-id order; ``stuff_classes`` lists
    all of them, ``thing_classes`` the things only, and both id maps point into the shared
    contiguous range (so a thing's contiguous id indexes ``stuff_classes``).
    """
    cats = sorted(categories, key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in cats if c["isthing"]],
        "stuff_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats) if c["isthing"]},
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def validate_narrative(index: int, narr, segments_by_id: Optional[Dict[int, dict]]) -> List[dict]:
    """Check one narrative's schema and segment ids; return its grounded segments.

    Args:
        index: position of the narrative in the json (for error messages).
        narr: the narrative as read from the json.
        segments_by_id: ``segments_info`` of its image keyed by segment id, or None when the
            image has no panoptic annotation (an error).
    Returns:
        the grounded segments (``noun`` true, >= 1 id), each with ``segment_ids`` as ints.
    Raises:
        ValueError naming the narrative: a missing key, a non-numeric id, an image without
        panoptic annotation, a segment id absent from that annotation.
    """
    name = _narrative_name(index, narr)
    if not isinstance(narr, dict):
        raise ValueError(f"{name}: expected a json object, got {type(narr).__name__}")
    missing = [k for k in _NARRATIVE_KEYS if k not in narr]
    if missing:
        raise ValueError(f"{name}: missing key(s) {missing}; a PNG narrative has {list(_NARRATIVE_KEYS)}")
    if not isinstance(narr["segments"], list) or not isinstance(narr["caption"], str):
        raise ValueError(f"{name}: 'segments' must be a list and 'caption' a string")
    if segments_by_id is None:
        raise ValueError(f"{name}: image {narr['image_id']!r} has no annotation in the panoptic json")
    grounded = []
    for j, seg in enumerate(narr["segments"]):
        missing = [k for k in _SEGMENT_KEYS if k not in seg] if isinstance(seg, dict) else list(_SEGMENT_KEYS)
        if missing:
            raise ValueError(f"{name}, segment {j}: missing key(s) {missing}; expected {list(_SEGMENT_KEYS)}")
        try:
            ids = [int(s) for s in seg["segment_ids"]]
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name}, segment {j}: segment_ids must be numeric strings, got {seg['segment_ids']!r}"
            ) from e
        unknown = [i for i in ids if i not in segments_by_id]
        if unknown:
            raise ValueError(
                f"{name}, segment {j} ({seg['utterance']!r}): segment id(s) {unknown} are not in the "
                f"panoptic segments_info of image {narr['image_id']!r} (known ids: {sorted(segments_by_id)})"
            )
        if seg["noun"] and ids:
            grounded.append(dict(seg, segment_ids=ids, index=j))
    return grounded


def load_png_narratives(png_json, panoptic_json, panoptic_root, image_root, dataset_name=None) -> List[dict]:
    """Load PNG narratives as detectron2 dataset dicts (one per narrative; format in the module doc).

    Narratives without a grounded phrase, and narratives whose utterances cannot be matched to
    the caption in order, are skipped; both counts are logged.

    Args:
        png_json: ``png_coco_{split}2017.json``-style list of narratives.
        panoptic_json: COCO panoptic json of the same images.
        panoptic_root: directory of the panoptic PNGs.
        image_root: directory of the images.
        dataset_name: if given, its category metadata (:func:`panoptic_category_metadata`) is set.
    Raises:
        FileNotFoundError: a json, an image or a panoptic PNG is missing.
        ValueError: malformed narrative (see :func:`validate_narrative`).
    """
    panoptic = load_json(str(panoptic_json), f"COCO panoptic json not found: {panoptic_json}")
    narratives = load_json(str(png_json), f"PNG narratives json not found: {png_json}")
    if not isinstance(narratives, list):
        raise ValueError(f"{png_json}: expected a json list of narratives, got {type(narratives).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in panoptic:
            raise ValueError(f"{panoptic_json}: missing key {key!r} of the COCO panoptic format")
    check_panoptic_json(panoptic, str(panoptic_json))

    meta = panoptic_category_metadata(panoptic["categories"])
    contiguous = meta["stuff_dataset_id_to_contiguous_id"]
    isthing = {c["id"]: bool(c["isthing"]) for c in panoptic["categories"]}
    images = {img["id"]: img for img in panoptic["images"]}
    anns = {ann["image_id"]: ann for ann in panoptic["annotations"]}
    segments_of = {}
    checked_files = set()

    dicts, n_ungrounded, unaligned = [], 0, []
    for index, narr in enumerate(narratives):
        name = _narrative_name(index, narr)
        try:
            image_id = int(narr["image_id"]) if isinstance(narr, dict) and "image_id" in narr else None
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: image_id must be a numeric string, got {narr['image_id']!r}") from e
        if image_id is not None and image_id in anns and image_id not in segments_of:
            segments_of[image_id] = {s["id"]: s for s in anns[image_id]["segments_info"]}
        grounded = validate_narrative(index, narr, segments_of.get(image_id))
        if image_id not in images:
            raise ValueError(f"{name}: image {image_id} is not in the 'images' of {panoptic_json}")
        if not grounded:
            n_ungrounded += 1
            continue
        spans = locate_utterances(narr["caption"], [s["utterance"] for s in narr["segments"]])
        if spans is None:
            unaligned.append(index)
            continue

        file_name = os.path.join(str(image_root), images[image_id]["file_name"])
        pan_seg_file_name = os.path.join(str(panoptic_root), anns[image_id]["file_name"])
        for path, what in ((file_name, "image"), (pan_seg_file_name, "panoptic PNG")):
            if path not in checked_files:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"{name}: {what} of image {image_id} not found: {path}")
                checked_files.add(path)

        phrases = []
        for seg in grounded:
            last = segments_of[image_id][seg["segment_ids"][-1]]
            if last["category_id"] not in contiguous:
                raise ValueError(
                    f"{name}: segment {last['id']} of image {image_id} has category_id "
                    f"{last['category_id']}, which is not among the panoptic json's categories"
                )
            phrases.append(
                {
                    "text": seg["utterance"],
                    "char_span": spans[seg["index"]],
                    "segment_ids": seg["segment_ids"],
                    "plural": len(set(seg["segment_ids"])) >= 2,
                    "isthing": isthing[last["category_id"]],
                    "category_id": contiguous[last["category_id"]],
                }
            )
        dicts.append(
            {
                "file_name": file_name,
                "pan_seg_file_name": pan_seg_file_name,
                "image_id": image_id,
                "height": images[image_id]["height"],
                "width": images[image_id]["width"],
                "annotator_id": narr["annotator_id"],
                "narrative_index": index,
                "caption": narr["caption"],
                "phrases": phrases,
            }
        )

    # every narrative passed validate_narrative: image_id, annotator_id and caption exist
    refuse_duplicates(narratives, lambda n: (str(n["image_id"]), str(n["annotator_id"]), n["caption"]),
                      file=str(png_json), what="narrative", key_name="(image_id, annotator_id, caption)")
    logger.info(
        f"Loaded {len(dicts)} narratives from {png_json}; skipped {n_ungrounded} without a grounded "
        f"noun phrase and {len(unaligned)} whose utterances do not match the caption in order"
        + (f" (first: narrative #{unaligned[0]})" if unaligned else "")
    )
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(**meta)
    return dicts


def register_png_dataset(name: str, loader, **metadata) -> None:
    """Register ``name`` (no-op if already registered) with ``evaluator_type="png"``.

    Args:
        loader: zero-argument callable returning the dataset dicts (called lazily).
        metadata: extra static metadata (e.g. file paths).
    """
    if name in DatasetCatalog.list():
        return
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(evaluator_type="png", **metadata)


def _load_coco(name: str, root: str):
    paths = [os.path.join(root, p) for p in PNG_COCO_SPLITS[name]]
    return load_png_narratives(*paths, dataset_name=name)


def _load_shapes(name: str, split: str):
    from .shapes_world import ensure_shapes_world

    root = ensure_shapes_world()
    ann = root / "annotations"
    return load_png_narratives(
        ann / f"png_shapes_{split}.json",
        ann / f"panoptic_{split}.json",
        ann / f"panoptic_{split}",
        root / "images" / split,
        dataset_name=name,
    )


def register_all_png(root: Optional[str] = None) -> None:
    """Register ``png_coco_{train,val}2017`` and ``png_shapes_{train,val}`` (idempotent).

    Args:
        root: the datasets directory; default ``$DETECTRON2_DATASETS`` (or ``datasets``).
    """
    root = root or os.getenv("DETECTRON2_DATASETS", "datasets")
    for name, rel in PNG_COCO_SPLITS.items():
        png_json, panoptic_json, panoptic_root, image_root = (os.path.join(root, p) for p in rel)
        register_png_dataset(
            name,
            lambda name=name: _load_coco(name, root),
            png_json=png_json,
            panoptic_json=panoptic_json,
            panoptic_root=panoptic_root,
            image_root=image_root,
        )
    for split in _SHAPES_SPLITS:
        name = f"png_shapes_{split}"
        register_png_dataset(name, lambda name=name, split=split: _load_shapes(name, split))
