"""The embedded "shapes world" dataset: a tiny synthetic COCO look-alike generated on demand.

Coloured shapes (the "things") lie in front of textured backgrounds (the "stuff"). One
generation writes every annotation family the project trains on, in the official formats:
COCO panoptic (+ Mask2Former-style semantic PNGs), COCO instances, COCO keypoints (star tips),
COCO captions with their noun phrases, Panoptic Narrative Grounding narratives, referring
expressions and metric depth. Layout under the root (``{split}`` in ``train``/``val``)::

    images/{split}/{image_id:012d}.jpg
    annotations/panoptic_{split}.json, annotations/panoptic_{split}/{image_id:012d}.png
    annotations/panoptic_semseg_{split}/{image_id:012d}.png
    annotations/instances_{split}.json, annotations/person_keypoints_{split}.json
    annotations/captions_{split}.json, annotations/captions_{split}_noun_phrases.json
    annotations/png_shapes_{split}.json, annotations/refs_{split}.json
    depth/{split}/{image_id:012d}.png          (uint16 millimetres, 0 = invalid)

Generation is seeded per image (``[seed, split, index]``), so it is byte-for-byte reproducible
and a small dataset is a prefix of a larger one. Nothing is generated at import time;
:func:`ensure_shapes_world` generates into a temporary directory and renames it into place under
a file lock, so concurrent callers see either nothing or a complete dataset.
"""
import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util
from tqdm import tqdm

from .shapes_world_scene import (
    DEPTH_SCALE,
    SHAPES_CATEGORIES,
    STAR_KEYPOINT_NAMES,
    STAR_KEYPOINT_SKELETON,
    Scene,
    sample_scene,
)
from .shapes_world_text import image_captions, image_narratives, image_refs

__all__ = [
    "DATASET_VERSION",
    "SPLITS",
    "get_shapes_root",
    "ensure_shapes_world",
    "generate_shapes_world",
    "image_id_for",
]

logger = logging.getLogger(__name__)

DATASET_VERSION = "shapes_world_v1"
SPLITS = ("train", "val")
DEFAULT_NUM_IMAGES = {"train": 96, "val": 24}
DEFAULT_IMAGE_SIZE = 128
DEFAULT_SEED = 0
MANIFEST_NAME = "shapes_world.json"
# Val ids start here so that image ids (and ids derived from them) are unique across splits
# whatever the number of train images.
_VAL_IMAGE_ID_OFFSET = 500_000
# Annotation ids are image_id * this + index: unique across splits, stable across sizes.
_ANN_PER_IMAGE = 100
# Semantic label of each category id: its index among all categories (things first).
_CONTIGUOUS_ID = {c["id"]: i for i, c in enumerate(SHAPES_CATEGORIES)}


def image_id_for(split: str, index: int) -> int:
    """The image id of the ``index``-th image (0-based) of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"Unknown shapes-world split {split!r}; expected one of {SPLITS}")
    return index + 1 + (_VAL_IMAGE_ID_OFFSET if split == "val" else 0)


def get_shapes_root() -> Path:
    """``$ODISE_EXT_CACHE/shapes_world_v1``; ``ODISE_EXT_CACHE`` defaults to ``~/.cache/odise_ext``.

    Only computes the path; never generates.
    """
    cache = os.environ.get("ODISE_EXT_CACHE") or os.path.join("~", ".cache", "odise_ext")
    return Path(cache).expanduser().absolute() / DATASET_VERSION


def ensure_shapes_world(
    root=None,
    *,
    num_train: int = DEFAULT_NUM_IMAGES["train"],
    num_val: int = DEFAULT_NUM_IMAGES["val"],
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Return the dataset root, generating the dataset there first if it is missing.

    Args:
        root: dataset directory; ``None`` means :func:`get_shapes_root`.
        num_train, num_val, image_size, seed: generation parameters. An existing dataset made
            with other parameters is an error (never silently reused).
    Returns:
        The absolute dataset root.
    """
    root = Path(root).expanduser().absolute() if root is not None else get_shapes_root()
    params = _generation_params(num_train, num_val, image_size, seed)
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(root.parent / f".{root.name}.lock"):
            if not root.exists():  # another process may have finished while we waited
                _generate_atomically(root, params)
    _check_manifest(root, params)
    return root


def generate_shapes_world(
    root,
    *,
    num_train: int = DEFAULT_NUM_IMAGES["train"],
    num_val: int = DEFAULT_NUM_IMAGES["val"],
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write the whole dataset into ``root`` (created; must be absent or empty). Not atomic:
    use :func:`ensure_shapes_world` unless you manage the directory yourself."""
    root = Path(root)
    params = _generation_params(num_train, num_val, image_size, seed)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"Cannot generate the shapes world into non-empty {root}")
    for split in SPLITS:
        _generate_split(root, split, params[f"num_{split}"], image_size, seed)
    _write_json(root / MANIFEST_NAME, params)
    return root


def _generation_params(num_train, num_val, image_size, seed) -> Dict[str, object]:
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if num_train >= _VAL_IMAGE_ID_OFFSET:
        raise ValueError(f"num_train must be < {_VAL_IMAGE_ID_OFFSET}, got {num_train}")
    if not isinstance(image_size, int) or not 32 <= image_size <= 2048:
        raise ValueError(f"image_size must be an int in [32, 2048], got {image_size!r}")
    return {
        "version": DATASET_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "image_size": image_size,
        "seed": int(seed),
    }


def _check_manifest(root: Path, params: Dict[str, object]) -> None:
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{root} exists but is not a shapes-world dataset (no {MANIFEST_NAME}); remove it or "
            "point ODISE_EXT_CACHE elsewhere"
        )
    with open(manifest) as f:
        found = json.load(f)
    if found != params:
        raise ValueError(
            f"The shapes world at {root} was generated with {found}, but {params} was requested; "
            "use another root or delete it to regenerate"
        )


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An inter-process lock (flock) that the OS releases even if the holder dies."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the atomic rename alone keeps the result valid
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _generate_atomically(root: Path, params: Dict[str, object]) -> None:
    logger.info(f"Generating the shapes world dataset at {root} ...")
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        kwargs = {k: v for k, v in params.items() if k != "version"}
        generate_shapes_world(tmp, **kwargs)
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.exists():
                raise
            # Lost a lock-free race (no flock available): the winner's copy is identical.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------
# Writers
# ------------------------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _rle(mask: np.ndarray) -> Dict[str, object]:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _bbox_xywh(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]


def _id_map_to_rgb(segment_map: np.ndarray) -> np.ndarray:
    """(H, W) int ids -> (H, W, 3) uint8 with id = R + 256 G + 256^2 B (COCO panoptic)."""
    return np.stack([(segment_map >> (8 * c)) & 255 for c in range(3)], axis=-1).astype(np.uint8)


def _write_pixel_files(scene: Scene, dirs: Dict[str, Path], stem: str) -> None:
    """Image (JPEG), panoptic id PNG, semantic PNG and depth PNG of one scene."""
    Image.fromarray(scene.image).save(dirs["image"] / f"{stem}.jpg", quality=95, subsampling=0)
    Image.fromarray(_id_map_to_rgb(scene.segment_map)).save(dirs["panoptic"] / f"{stem}.png")
    # Mask2Former's semantic PNGs: contiguous index over all categories, 255 where unlabeled.
    semantic = np.full(scene.segment_map.shape, 255, dtype=np.uint8)
    for seg in scene.segments:
        semantic[scene.segment_map == seg.id] = _CONTIGUOUS_ID[seg.category_id]
    Image.fromarray(semantic).save(dirs["semseg"] / f"{stem}.png")
    depth_mm = np.round(scene.depth * DEPTH_SCALE).astype(np.uint16)
    Image.fromarray(depth_mm).save(dirs["depth"] / f"{stem}.png")


def _generate_split(root: Path, split: str, num_images: int, image_size: int, seed: int) -> None:
    ann_dir = root / "annotations"
    dirs = {
        "image": root / "images" / split,
        "panoptic": ann_dir / f"panoptic_{split}",
        "semseg": ann_dir / f"panoptic_semseg_{split}",
        "depth": root / "depth" / split,
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    images, panoptic_anns, instance_anns, keypoint_anns = [], [], [], []
    captions, noun_phrases, narratives, refs = [], {}, [], []
    split_index = SPLITS.index(split)
    for index in tqdm(range(num_images), desc=f"shapes world {split}", disable=None, leave=False):
        image_id = image_id_for(split, index)
        stem = f"{image_id:012d}"
        rng = np.random.default_rng([seed, split_index, index])
        scene = sample_scene(rng, image_size)

        _write_pixel_files(scene, dirs, stem)
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": image_size,
                       "width": image_size})
        panoptic_anns.append({
            "image_id": image_id,
            "file_name": f"{stem}.png",
            "segments_info": [
                {"id": s.id, "category_id": s.category_id, "iscrowd": 0,
                 "bbox": [int(v) for v in _bbox_xywh(s.mask)], "area": int(s.mask.sum())}
                for s in scene.segments
            ],
        })
        ann_ids = _append_instances(scene, image_id, instance_anns, keypoint_anns)
        for k, (text, phrases) in enumerate(image_captions(scene)):
            caption_id = image_id * 10 + k
            captions.append({"image_id": image_id, "id": caption_id, "caption": text})
            noun_phrases[str(caption_id)] = phrases
        narratives.extend(image_narratives(scene, image_id))
        refs.extend(image_refs(scene, image_id, ann_ids))

    info = {"description": f"odise-ext {DATASET_VERSION} ({split})", "version": DATASET_VERSION}
    base = {"info": info, "licenses": [], "images": images}
    panoptic_cats = [
        {k: c[k] for k in ("id", "name", "isthing", "color", "supercategory")}
        for c in SHAPES_CATEGORIES
    ]
    thing_cats = [{k: c[k] for k in ("id", "name", "supercategory")}
                  for c in SHAPES_CATEGORIES if c["isthing"]]
    star = next(c for c in SHAPES_CATEGORIES if c["name"] == "star")
    keypoint_cat = {"id": star["id"], "name": "star", "supercategory": star["supercategory"],
                    "keypoints": list(STAR_KEYPOINT_NAMES),
                    "skeleton": [list(p) for p in STAR_KEYPOINT_SKELETON]}
    _write_json(ann_dir / f"panoptic_{split}.json",
                {**base, "annotations": panoptic_anns, "categories": panoptic_cats})
    _write_json(ann_dir / f"instances_{split}.json",
                {**base, "annotations": instance_anns, "categories": thing_cats})
    _write_json(ann_dir / f"person_keypoints_{split}.json",
                {**base, "annotations": keypoint_anns, "categories": [keypoint_cat]})
    _write_json(ann_dir / f"captions_{split}.json", {**base, "annotations": captions})
    _write_json(ann_dir / f"captions_{split}_noun_phrases.json", noun_phrases)
    _write_json(ann_dir / f"png_shapes_{split}.json", narratives)
    _write_json(ann_dir / f"refs_{split}.json", refs)


def _append_instances(
    scene: Scene, image_id: int, instance_anns: List[dict], keypoint_anns: List[dict]
) -> List[Optional[int]]:
    """Append COCO instance (and star keypoint) annotations; return the ann id per segment
    (``None`` for stuff)."""
    ann_ids: List[Optional[int]] = []
    for k, seg in enumerate(scene.segments):
        if seg.shape is None:
            ann_ids.append(None)
            continue
        ann_id = image_id * _ANN_PER_IMAGE + k + 1
        ann_ids.append(ann_id)
        ann = {"id": ann_id, "image_id": image_id, "category_id": seg.category_id,
               "segmentation": _rle(seg.mask), "area": int(seg.mask.sum()),
               "bbox": _bbox_xywh(seg.mask), "iscrowd": 0}
        instance_anns.append(ann)
        if seg.keypoints is not None:
            # COCO keypoints are pixel indices (detectron2 adds 0.5 when loading), so store the
            # continuous tip minus half a pixel.
            flat = []
            for x, y, v in seg.keypoints:
                flat += [round(float(x) - 0.5, 2), round(float(y) - 0.5, 2), int(v)]
            keypoint_anns.append({**ann, "keypoints": flat,
                                  "num_keypoints": int(sum(v > 0 for _, _, v in seg.keypoints))})
    return ann_ids
