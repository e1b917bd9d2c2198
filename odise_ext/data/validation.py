"""Ground-truth checks made when a dataset is loaded for training or evaluation.

A wrong annotation must stop a run before it starts (or be skipped with a count), not surface
as a crash mid-training or as a wrong metric. :func:`check_dataset_dicts` checks detectron2
dataset dicts of any of our datasets by the keys they hold, at one of three levels:

- ``"none"``: nothing.
- ``"files"`` (cheap: file headers only, nothing decoded): ``file_name``, ``sem_seg_file_name``,
  ``pan_seg_file_name``, ``depth_file_name`` exist and are images; each label map has the
  image's size, and the image the dict's ``height`` / ``width``; ``segments_info`` ids are
  unique; a JPEG / PNG that does not end with its end marker (a truncated file) is decoded, and
  refused if it cannot be (so a cut-off image stops the run before it starts). An image without any segment is valid if its PNG is all void (decoded: such images are
  rare); kept images without segments are counted and logged.
- ``"full"``: ``"files"`` plus every panoptic PNG decoded: its segment ids must be exactly the
  ids of ``segments_info`` (a PNG of another image, or a segment missing from either side, is
  caught), and a PNG narrative's phrase segment ids must be in it; every semantic label map
  decoded: its values must be classes of the dataset's metadata or its ignore label.

A failing record is named by its index in the dataset and its ids (``image_id`` ...).

Reading the header of every file of COCO train (118k images, 2 label maps each) takes minutes,
decoding every panoptic PNG much longer: training sets default to ``"files"``, test sets (whose
numbers are the product) to ``"full"`` (``DATA.CHECK_*_ANNOTATIONS``).
"""
import hashlib
import logging
from collections import Counter
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from ..config.data import ANNOTATION_CHECK_LEVELS
from .dataset_mapper import describe_record
from .image_io import read_label_map, read_panoptic_rgb

__all__ = ["CHECK_LEVELS", "check_dataset_dicts", "check_record"]

logger = logging.getLogger(__name__)

CHECK_LEVELS = ANNOTATION_CHECK_LEVELS
_LABEL_KEYS = ("sem_seg_file_name", "pan_seg_file_name", "depth_file_name")
_EXIF_ORIENTATION = 0x0112


def _header_size(path: str, key: str):
    """(width, height) as displayed (EXIF rotation applied), or a problem string."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if key == "file_name" and img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                w, h = h, w  # detectron2 applies the EXIF rotation when it reads the image
            return w, h
    except FileNotFoundError:
        return f"{key} missing: {path}"
    except IsADirectoryError:
        return f"{key} is a directory: {path}"
    except Exception as e:  # noqa: BLE001 (any unreadable header is the same problem)
        return f"{key} is not a readable image: {path} ({type(e).__name__}: {e})"


def _truncation(path: str, key: str) -> Optional[str]:
    """A problem if the JPEG / PNG ``path`` lacks its end marker and cannot be decoded."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64))
        tail = f.read()
    if (head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail) or (
            head.startswith(b"\x89PNG") and b"IEND" not in tail):
        try:  # data after the end marker is allowed: only a file that cannot be decoded fails
            with Image.open(path) as img:
                img.load()
        except Exception as e:  # noqa: BLE001
            return f"{key} cannot be decoded (truncated?): {path} ({type(e).__name__}: {e})"
    return None


def _png_segment_ids(path: str) -> set:
    rgb = read_panoptic_rgb(path).astype(np.int64)
    ids = np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2])
    return set(ids.tolist()) - {0}


def check_record(d: Dict, level: str) -> Optional[str]:
    """The first problem of one dataset dict at ``level`` (see module doc), or None."""
    if level == "none":
        return None
    segments = d.get("segments_info")
    if segments is not None:
        ids = [s["id"] for s in segments]
        if len(set(ids)) != len(ids):
            return f"segments_info ids repeat: {sorted(i for i, n in Counter(ids).items() if n > 1)}"
    size = _header_size(d["file_name"], "file_name") if "file_name" in d else None
    if isinstance(size, str):
        return size
    if size is not None and _truncation(d["file_name"], "file_name"):
        return _truncation(d["file_name"], "file_name")
    if size is not None and "height" in d and "width" in d and size != (d["width"], d["height"]):
        return f"image {d['file_name']} is {size[0]}x{size[1]}, the annotation says {d['width']}x{d['height']}"
    for key in _LABEL_KEYS:
        if key not in d:
            continue
        label = _header_size(d[key], key)
        if isinstance(label, str):
            return label
        cut = _truncation(d[key], key)
        if cut:
            return cut
        if size is not None and label != size:
            return f"{key} {d[key]} is {label[0]}x{label[1]}, its image {d['file_name']} {size[0]}x{size[1]}"
    # an image without segments is rare: its PNG is decoded at every level, to tell "all void"
    # from a lost segments_info
    if (level == "full" or segments == []) and "pan_seg_file_name" in d:
        try:
            found = _png_segment_ids(d["pan_seg_file_name"])
        except ValueError as e:
            return str(e)
        if segments is not None:
            listed = {s["id"] for s in segments}
            if listed != found:
                return (f"panoptic PNG {d['pan_seg_file_name']} does not match its segments_info: ids "
                        f"{sorted(listed - found)[:5]} are not in the PNG, PNG ids {sorted(found - listed)[:5]} "
                        "are not in segments_info")
        for phrase in d.get("phrases", ()):
            absent = sorted(set(phrase["segment_ids"]) - found)
            if absent:
                return f"phrase {phrase['text']!r}: segment ids {absent} are not in {d['pan_seg_file_name']}"
    return None


def _label_range(dataset_name: str):
    """(number of classes, ignore label) of ``dataset_name``'s metadata, or None if unknown."""
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(dataset_name) if dataset_name in MetadataCatalog.list() else None
    if meta is None or not meta.get("stuff_classes", None):
        return None
    return len(meta.stuff_classes), meta.get("ignore_label", None)


def _label_problem(path: str, num_classes: int, ignore) -> Optional[str]:
    try:
        labels = read_label_map(path, "sem_seg_file_name")
    except ValueError as e:
        return str(e)
    bad = np.unique(labels[(labels < 0) | ((labels >= num_classes) & (labels != ignore))])
    if bad.size:
        return (f"sem_seg_file_name {path} holds label values {bad[:8].tolist()} outside 0..{num_classes - 1} "
                f"that are not the ignore label {ignore}")
    return None


def check_dataset_dicts(dicts: List[Dict], dataset_name: str, *, level: str, skip_bad: bool,
                        switch: str = "") -> List[Dict]:
    """The dicts that pass :func:`check_record`.

    Args:
        level: one of :data:`CHECK_LEVELS`.
        skip_bad: drop failing dicts (counted and logged); otherwise a failing dict is an error.
        switch: the config key that set ``level``, named in messages.
    Raises:
        ValueError: a failing dict without ``skip_bad`` (the first problems are listed), an
            unknown ``level``, or nothing left after skipping.
    """
    if level not in CHECK_LEVELS:
        raise ValueError(f"{switch or 'annotation check level'} must be one of {CHECK_LEVELS}, got {level!r}")
    if level == "none":
        return dicts
    labels = _label_range(dataset_name) if level == "full" else None
    kept, bad = [], []
    for i, d in enumerate(dicts):
        problem = check_record(d, level)
        if problem is None and labels is not None and "sem_seg_file_name" in d:
            problem = _label_problem(d["sem_seg_file_name"], *labels)
        if problem is None:
            kept.append(d)
        else:
            bad.append(f"record #{i} {describe_record(d)}: {problem}")
    empty = sum(1 for d in kept if d.get("segments_info") == [])
    if empty:
        logger.warning(f"{empty} of {len(dicts)} images of '{dataset_name}' have no segment (all void)")
    if bad and not skip_bad:
        shown = "\n  ".join(bad[:5])
        raise ValueError(
            f"{len(bad)} of {len(dicts)} records of dataset '{dataset_name}' fail the annotation check"
            f"{f' ({switch}={level!r})' if switch else ''}:\n  {shown}"
            + (f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else "")
        )
    if bad:
        logger.warning(f"skipped {len(bad)} of {len(dicts)} records of '{dataset_name}' that fail the annotation "
                       f"check (first: {bad[0]})")
        if not kept:
            raise ValueError(f"every record of dataset '{dataset_name}' fails the annotation check (first: {bad[0]})")
    logger.info(f"annotation check ({level}) of '{dataset_name}': {len(kept)} records kept, {len(bad)} skipped")
    return kept


# {test dataset name: (level, fingerprint of its records)} of the checks passed in this process.
_PASSED_TEST_CHECKS: Dict[str, tuple] = {}


def _fingerprint(dicts: List[Dict]) -> str:
    """Digest of the records (file names, sizes, segments, ...); files on disk are assumed not
    to change while the process runs."""
    return hashlib.sha1(repr(dicts).encode()).hexdigest()


def checked_dataset_dicts(cfg, names, *, is_train: bool) -> List[Dict]:
    """detectron2's ``get_detection_dataset_dicts`` for ``names``, each dataset checked as
    ``DATA.CHECK_{TRAIN,TEST}_ANNOTATIONS`` says (test sets never skip: a skipped image would
    change the benchmark)."""
    from detectron2.data import get_detection_dataset_dicts

    if isinstance(names, str):
        names = [names]
    switch = "DATA.CHECK_TRAIN_ANNOTATIONS" if is_train else "DATA.CHECK_TEST_ANNOTATIONS"
    level = cfg.DATA.CHECK_TRAIN_ANNOTATIONS if is_train else cfg.DATA.CHECK_TEST_ANNOTATIONS
    skip = bool(cfg.DATA.SKIP_BAD_TRAIN_ANNOTATIONS) and is_train
    dicts = []
    for name in names:
        if is_train:
            loaded = get_detection_dataset_dicts(
                name,
                filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
                min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
            )
            dicts.extend(check_dataset_dicts(loaded, name, level=level, skip_bad=skip, switch=switch))
            continue
        loaded = get_detection_dataset_dicts(name, filter_empty=False)
        # detectron2 rebuilds the test loader at every periodic evaluation: a test set that
        # passed (nothing is skipped from one) is not decoded again unless its records changed.
        passed = (level, _fingerprint(loaded))
        if _PASSED_TEST_CHECKS.get(name) != passed:
            check_dataset_dicts(loaded, name, level=level, skip_bad=False, switch=switch)
            _PASSED_TEST_CHECKS[name] = passed
        dicts.extend(loaded)
    return dicts
