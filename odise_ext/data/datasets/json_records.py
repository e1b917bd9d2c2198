"""Checks of the records read from a dataset's JSON files, made by every loader when it reads them.

A record listed twice is evaluated twice and changes the metrics without any error (an
annotation repeated in a panoptic JSON moved PQ from 11.11 to 11.60; a repeated image id moved
segm AP from 0.905 to 0.715), and a record missing a key used to surface as a bare
``KeyError``. Every message names the file and both records (index in the file and id).
"""
import json
import os
from typing import Callable, Dict, Hashable, Iterable, Sequence

__all__ = ["check_coco_instances_json", "check_panoptic_json", "load_checked_coco_json", "refuse_duplicates",
           "require_keys"]

# {(path, size, mtime): None} of the instance JSONs that passed (evaluation re-checks them)
_PASSED: Dict[tuple, None] = {}


def require_keys(record, keys: Sequence[str], *, file: str, what: str) -> None:
    """``ValueError`` naming ``file`` and ``what`` (e.g. "annotations #3") if ``record`` is not
    a JSON object holding every key of ``keys``."""
    if not isinstance(record, dict):
        raise ValueError(f"{file}: {what} is a {type(record).__name__}, expected a JSON object with keys {list(keys)}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{file}: {what} lacks the key(s) {missing} (it has {sorted(record)[:10]})")


def refuse_duplicates(records: Iterable, key: Callable[[object], Hashable], *, file: str, what: str,
                      key_name: str) -> None:
    """``ValueError`` naming both records if two of ``records`` (the list ``what`` of ``file``)
    have the same ``key(record)``."""
    first: Dict[Hashable, int] = {}
    for i, r in enumerate(records):
        k = key(r)
        if k in first:
            raise ValueError(
                f"{file}: {what} #{first[k]} and #{i} have the same {key_name} {k!r}: a record listed twice "
                "would be trained on and evaluated twice; remove one of them"
            )
        first[k] = i


def check_panoptic_json(info: Dict, json_file: str) -> None:
    """COCO panoptic JSON: every annotation has ``image_id``, ``file_name``, ``segments_info``
    (each segment ``id``, ``category_id``); no image id or PNG twice among the annotations;
    ``images`` ids unique. (A segment id repeated inside an annotation is a record problem:
    ``odise_ext.data.validation``.)"""
    anns = info["annotations"]
    for i, ann in enumerate(anns):
        require_keys(ann, ("image_id", "file_name", "segments_info"), file=json_file, what=f"annotations #{i}")
        for j, seg in enumerate(ann["segments_info"]):
            require_keys(seg, ("id", "category_id"), file=json_file,
                         what=f"annotations #{i} (image_id {ann['image_id']!r}) segments_info #{j}")
    refuse_duplicates(anns, lambda a: a["image_id"], file=json_file, what="annotations", key_name="image_id")
    refuse_duplicates(anns, lambda a: a["file_name"], file=json_file, what="annotations", key_name="file_name")
    images = info.get("images", [])
    for i, img in enumerate(images):
        require_keys(img, ("id",), file=json_file, what=f"images #{i}")
    refuse_duplicates(images, lambda m: m["id"], file=json_file, what="images", key_name="id")


def _annotation_content(a: Dict) -> str:
    return json.dumps({k: v for k, v in a.items() if k != "id"}, sort_keys=True)


def check_coco_instances_json(json_file: str, info: Dict = None) -> None:
    """COCO instance JSON (the instance evaluator's ground truth, ``load_coco_json`` datasets):
    ``images`` with unique ``id`` and ``file_name``; ``annotations`` with ``id``, ``image_id``,
    ``category_id``, unique ids, of a listed image, and no annotation listed twice under two ids.
    ``info``: the parsed file if already read; a file that passed is not read again."""
    from .catalog_utils import load_json

    stat = os.stat(json_file)
    stamp = (os.path.abspath(json_file), stat.st_size, stat.st_mtime_ns)
    if stamp in _PASSED:
        return
    info = load_json(json_file) if info is None else info
    require_keys(info, ("images", "annotations"), file=json_file, what="the file")
    for i, img in enumerate(info["images"]):
        require_keys(img, ("id", "file_name"), file=json_file, what=f"images #{i}")
    refuse_duplicates(info["images"], lambda m: m["id"], file=json_file, what="images", key_name="id")
    refuse_duplicates(info["images"], lambda m: m["file_name"], file=json_file, what="images", key_name="file_name")
    images = {m["id"] for m in info["images"]}
    for i, a in enumerate(info["annotations"]):
        require_keys(a, ("id", "image_id", "category_id"), file=json_file, what=f"annotations #{i}")
        if a["image_id"] not in images:
            raise ValueError(f"{json_file}: annotations #{i} (id {a['id']!r}) has image_id {a['image_id']!r}, "
                             "which is not in 'images'")
    refuse_duplicates(info["annotations"], lambda a: a["id"], file=json_file, what="annotations", key_name="id")
    refuse_duplicates(info["annotations"], _annotation_content, file=json_file, what="annotations",
                      key_name="image, category and geometry")
    _PASSED[stamp] = None


def load_checked_coco_json(json_file, image_root, dataset_name=None):
    """detectron2's ``load_coco_json`` after :func:`check_coco_instances_json`."""
    from detectron2.data.datasets import load_coco_json

    check_coco_instances_json(str(json_file))
    return load_coco_json(json_file, image_root, dataset_name)
