#!/usr/bin/env python
"""Write COCO semantic-segmentation PNGs from the official panoptic annotations.

For each image of ``coco/annotations/panoptic_{split}2017.json``, the panoptic PNG is decoded
(segment id = R + 256 G + 256^2 B) and every segment is painted with the contiguous id of its
category: its index among detectron2's 133 ``COCO_CATEGORIES`` (things and stuff, the order
Mask2Former's ``coco_2017_*_panoptic_with_sem_seg`` uses); unlabelled pixels get 255.

Inputs:  coco/annotations/panoptic_{split}2017.json, coco/panoptic_{split}2017/*.png
Output:  coco/panoptic_semseg_{split}2017/*.png (uint8)

Existing outputs are kept unless ``--overwrite``. Usage::

    python datasets/prepare_coco_semantic_from_panoptic.py [--root DIR] [--splits val]
"""
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # datasets/common_args.py
from common_args import per_split_parser  # noqa: E402


def get_parser():
    return per_split_parser(__doc__)


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

import numpy as np
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from PIL import Image

from odise_ext.data.datasets.prepare_utils import (
    missing_inputs,
    progress_map,
    report_missing,
    run_per_split,
    save_image,
)
from odise_ext.data.datasets.register_coco import COCO_SOURCES, coco_paths

CONTIGUOUS_ID = {c["id"]: i for i, c in enumerate(COCO_CATEGORIES)}


def panoptic_to_semantic(ann: dict, panoptic_root: str, out_root: str, overwrite: bool) -> str:
    """Convert one panoptic annotation; returns the output path."""
    out = os.path.join(out_root, os.path.splitext(ann["file_name"])[0] + ".png")
    if os.path.exists(out) and not overwrite:
        return out
    png = os.path.join(panoptic_root, ann["file_name"])
    if not os.path.isfile(png):
        raise FileNotFoundError(f"Panoptic PNG of image {ann['image_id']} missing: {png}")
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.uint32)
    segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    semantic = np.full(segment_ids.shape, 255, dtype=np.uint8)
    for seg in ann["segments_info"]:
        if seg["category_id"] not in CONTIGUOUS_ID:
            raise ValueError(f"Image {ann['image_id']}: category_id {seg['category_id']} is not "
                             "one of the 133 COCO panoptic categories")
        semantic[segment_ids == seg["id"]] = CONTIGUOUS_ID[seg["category_id"]]
    save_image(semantic, out)
    return out


def convert_split(root: str, split: str, overwrite: bool = False, workers: int = 1) -> int:
    """Convert one split; returns an exit status (1 when inputs are missing)."""
    p = coco_paths(root, split)
    missing = missing_inputs([(p[k], COCO_SOURCES[k].format(split=split))
                              for k in ("panoptic_json", "panoptic_root")])
    if missing:
        return report_missing(missing)
    with open(p["panoptic_json"]) as f:
        annotations = json.load(f)["annotations"]
    os.makedirs(p["sem_seg_root"], exist_ok=True)
    fn = functools.partial(panoptic_to_semantic, panoptic_root=p["panoptic_root"],
                           out_root=p["sem_seg_root"], overwrite=overwrite)
    for _ in progress_map(fn, annotations, total=len(annotations), workers=workers,
                          desc=f"coco {split}: panoptic -> semantic"):
        pass
    print(f"Wrote {len(annotations)} semantic PNGs to {p['sem_seg_root']}")
    return 0


def main(argv=None) -> int:
    return run_per_split(convert_split, get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
