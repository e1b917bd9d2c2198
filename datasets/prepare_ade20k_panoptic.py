#!/usr/bin/env python
"""Build ADE20K-150 panoptic and instance annotations (COCO formats) from the official release.

Per image, as Mask2Former's ADE20K conversion does:

- stuff segments: one per stuff class present in the SceneParsing PNG (class k -> id k - 1);
- thing segments: one per instance of the instance-annotation PNG (R = Instance100 category,
  G = instance id, 0 = none), its class given by the official Instance100 -> SceneParse150
  table; instances are pasted over stuff. Thing-class pixels without an instance are void.

Segment ids are 1, 2, ... per image; areas and boxes are measured on the final panoptic map.
The instance json holds the thing segments (RLE masks, ids = ADE-150 class index) and shares
its image ids (file stems) with the panoptic json.

Inputs:  ade/ADEChallengeData2016/images/{training,validation}/*.jpg
         ade/ADEChallengeData2016/annotations/{training,validation}/*.png
         ade/ADEChallengeData2016/annotations_instance/{training,validation}/*.png
Outputs: ade/ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png
         ade/ADEChallengeData2016/ade20k_panoptic_{train,val}.json
         ade/ADEChallengeData2016/ade20k_instance_{train,val}.json

A split whose two jsons exist is skipped unless ``--overwrite``. Usage::

    python datasets/prepare_ade20k_panoptic.py [--root DIR] [--splits val]
"""
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # datasets/common_args.py
from common_args import per_split_parser  # noqa: E402


def get_parser():
    return per_split_parser(__doc__)


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

from odise_ext.data.datasets.categories import (
    ADE20K_150_CATEGORIES,
    ADE20K_INSTANCE_TO_SEMANTIC,
)
from odise_ext.data.datasets.prepare_utils import (
    missing_inputs,
    progress_map,
    report_missing,
    run_per_split,
    save_image,
    save_json,
)
from odise_ext.data.datasets.register_ade20k import ADE20K_SOURCES, ade20k_paths

IS_THING = [bool(c["isthing"]) for c in ADE20K_150_CATEGORIES]


def _bbox(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def _open(path: str, channels: int) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB") if channels == 3 else im, dtype=np.uint8)
    if (arr.ndim == 3) != (channels == 3):
        raise ValueError(f"{path}: expected a {'3-channel' if channels == 3 else 'single-channel'}"
                         f" PNG, got shape {arr.shape}")
    return arr


def convert_image(stem: str, sem_dir: str, ins_dir: str, out_dir: str):
    """Panoptic PNG of one image; returns (image entry, panoptic annotation, thing masks)."""
    sem_path = os.path.join(sem_dir, stem + ".png")
    ins_path = os.path.join(ins_dir, stem + ".png")
    semantic = _open(sem_path, 1).astype(np.int32) - 1  # -1: "other" (void)
    instance = _open(ins_path, 3)
    if instance.shape[:2] != semantic.shape:
        raise ValueError(f"{ins_path} is {instance.shape[:2]}, {sem_path} is {semantic.shape}")
    if semantic.max() >= len(IS_THING):
        raise ValueError(f"{sem_path}: class value {semantic.max() + 1} > 150")

    panoptic = np.zeros(semantic.shape, dtype=np.int32)
    classes = []  # class of segment id i + 1
    for cls in np.unique(semantic):
        if cls >= 0 and not IS_THING[cls]:
            classes.append(int(cls))
            panoptic[semantic == cls] = len(classes)
    for inst in np.unique(instance[..., 1]):
        if inst == 0:
            continue
        mask = instance[..., 1] == inst
        cats = np.unique(instance[..., 0][mask])
        if len(cats) != 1 or int(cats[0]) not in ADE20K_INSTANCE_TO_SEMANTIC:
            raise ValueError(f"{ins_path}: instance {inst} has Instance100 categories "
                             f"{cats.tolist()}; expected exactly one in 1..100")
        classes.append(ADE20K_INSTANCE_TO_SEMANTIC[int(cats[0])] - 1)
        panoptic[mask] = len(classes)

    segments, things = [], []
    for seg_id, cls in enumerate(classes, start=1):
        mask = panoptic == seg_id
        area = int(mask.sum())
        if area == 0:  # a stuff region entirely covered by instances
            continue
        seg = {"id": seg_id, "category_id": cls, "area": area, "bbox": _bbox(mask), "iscrowd": 0}
        segments.append(seg)
        if IS_THING[cls]:
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            things.append({"category_id": cls, "bbox": seg["bbox"], "area": area,
                           "iscrowd": 0, "segmentation": rle})

    rgb = np.stack([panoptic % 256, panoptic // 256 % 256, panoptic // 65536], axis=-1)
    save_image(rgb.astype(np.uint8), os.path.join(out_dir, stem + ".png"))
    h, w = semantic.shape
    image = {"id": stem, "file_name": stem + ".jpg", "width": w, "height": h}
    annotation = {"image_id": stem, "file_name": stem + ".png", "segments_info": segments}
    return image, annotation, things


def convert_split(root: str, split: str, overwrite: bool = False, workers: int = 1) -> int:
    p = ade20k_paths(root, split)
    missing = missing_inputs([(p[k], ADE20K_SOURCES[k])
                              for k in ("image_root", "annotations", "instance_annotations")])
    if missing:
        return report_missing(missing)
    if not overwrite and all(os.path.exists(p[k]) for k in ("panoptic_json", "instances_json")):
        print(f"ade20k {split}: {p['panoptic_json']} and {p['instances_json']} exist, skipping "
              "(--overwrite to redo)")
        return 0
    stems = sorted(os.path.splitext(n)[0] for n in os.listdir(p["image_root"])
                   if n.endswith(".jpg"))
    lacking = [(os.path.join(d, s + ".png"), ADE20K_SOURCES[k]) for s in stems
               for d, k in ((p["annotations"], "annotations"),
                            (p["instance_annotations"], "instance_annotations"))
               if not os.path.isfile(os.path.join(d, s + ".png"))]
    if lacking:
        print(f"{len(lacking)} annotation PNGs are missing; the first ones:", file=sys.stderr)
        return report_missing(lacking[:10])

    fn = functools.partial(convert_image, sem_dir=p["annotations"],
                           ins_dir=p["instance_annotations"], out_dir=p["panoptic_root"])
    images, annotations, instances = [], [], []
    for image, annotation, things in progress_map(fn, stems, total=len(stems), workers=workers,
                                                  desc=f"ade20k {split}: panoptic"):
        images.append(image)
        annotations.append(annotation)
        for thing in things:
            instances.append({"id": len(instances) + 1, "image_id": image["id"], **thing})

    categories = [{k: c[k] for k in ("id", "name", "isthing", "color")}
                  for c in ADE20K_150_CATEGORIES]
    save_json({"images": images, "annotations": instances,
               "categories": [{"id": c["id"], "name": c["name"]}
                              for c in categories if c["isthing"]]}, p["instances_json"])
    save_json({"images": images, "annotations": annotations, "categories": categories},
              p["panoptic_json"])
    print(f"Wrote {len(images)} panoptic PNGs to {p['panoptic_root']}, {p['panoptic_json']} and "
          f"{p['instances_json']} ({len(instances)} instances)")
    return 0


def main(argv=None) -> int:
    return run_per_split(convert_split, get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
