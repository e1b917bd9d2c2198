#!/usr/bin/env python
"""Prepare PASCAL-Context (PC-59 and PC-459) from the official downloads.

Reads the PASCAL-Context label maps (``LabelMap`` of ``VOCdevkit/VOC2010/trainval/<id>.mat``,
values 1..459 in the order of the release's ``labels.txt``, 0 = unlabelled) and writes:

- PC-459: ``value - 1`` as uint16 TIFF, unlabelled -> 65535 (ODISE's convention);
- PC-59: the rank of the value among the 59 benchmark classes (``PASCAL_CONTEXT_59_CATEGORIES``,
  the standard 59-class id list) as uint8 PNG; every other pixel -> 255 (ignored).

ODISE derives PC-59 with the Detail API from ``trainval_merged.json``; this script reads the
``.mat`` label maps of the same release instead, so it needs neither that API nor that json.
Splits: ``VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt`` (4,998 / 5,105 images), the
PASCAL-Context split. Images are copied unchanged.

Outputs: pascal_ctx_d2/images/{training,validation}/*.jpg
         pascal_ctx_d2/annotations_ctx59/{training,validation}/*.png
         pascal_ctx_d2/annotations_ctx459/{training,validation}/*.tif

Existing outputs are kept unless ``--overwrite``. Usage::

    python datasets/prepare_pascal_context.py [--root DIR] [--splits val] [--only 59]
"""
import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # datasets/common_args.py
from common_args import add_common_arguments  # noqa: E402


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, splits=("train", "val"))
    parser.add_argument("--only", choices=("59", "459"), default=None,
                        help="write one label set only (default: both)")
    return parser


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

import numpy as np
import scipy.io

from odise_ext.data.datasets.categories import PASCAL_CONTEXT_59_CATEGORIES
from odise_ext.data.datasets.prepare_utils import (
    copy_file,
    missing_inputs,
    progress_map,
    read_split_list,
    report_missing,
    resolve_root,
    save_image,
)
from odise_ext.data.datasets.register_pascal import PASCAL_SOURCES, pascal_paths

NUM_FULL_CLASSES = 459
LOOKUP_59 = np.full(NUM_FULL_CLASSES + 1, 255, dtype=np.uint8)
for _c in PASCAL_CONTEXT_59_CATEGORIES:
    LOOKUP_59[_c["context_id"]] = _c["id"]


def read_label_map(mat_file: str) -> np.ndarray:
    """``LabelMap`` of a PASCAL-Context ``.mat`` file, checked to hold values 0..459."""
    mat = scipy.io.loadmat(mat_file)
    if "LabelMap" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise KeyError(f"{mat_file} has no 'LabelMap' (variables: {keys})")
    label = np.asarray(mat["LabelMap"])
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"{mat_file}: LabelMap must be a 2-D integer map, got {label.dtype} "
                         f"{label.shape}")
    if label.min() < 0 or label.max() > NUM_FULL_CLASSES:
        raise ValueError(f"{mat_file}: LabelMap values {label.min()}..{label.max()} outside "
                         f"0..{NUM_FULL_CLASSES}")
    return label.astype(np.int64)


def to_ctx459(label: np.ndarray) -> np.ndarray:
    return np.where(label == 0, 65535, label - 1).astype(np.uint16)


def to_ctx59(label: np.ndarray) -> np.ndarray:
    return LOOKUP_59[label]


def convert_image(image_id: str, paths: dict, kinds, overwrite: bool) -> None:
    outputs = {"image": os.path.join(paths["ctx_image_root"], image_id + ".jpg")}
    if "59" in kinds:
        outputs["59"] = os.path.join(paths["ctx59_root"], image_id + ".png")
    if "459" in kinds:
        outputs["459"] = os.path.join(paths["ctx459_root"], image_id + ".tif")
    if not overwrite and all(os.path.exists(o) for o in outputs.values()):
        return
    label = read_label_map(os.path.join(paths["context_labels"], image_id + ".mat"))
    if "59" in outputs:
        save_image(to_ctx59(label), outputs["59"])
    if "459" in outputs:
        save_image(to_ctx459(label), outputs["459"])
    copy_file(os.path.join(paths["voc2010_images"], image_id + ".jpg"), outputs["image"])


def convert_split(root: str, split: str, kinds=("59", "459"), overwrite: bool = False,
                  workers: int = 1) -> int:
    p = pascal_paths(root, split)
    missing = missing_inputs([(p[k], PASCAL_SOURCES[k])
                              for k in ("voc2010_images", "voc2010_split", "context_labels")])
    if missing:
        return report_missing(missing)
    ids = read_split_list(p["voc2010_split"])
    lacking = [(os.path.join(p[k], i + ext), PASCAL_SOURCES[k]) for i in ids
               for k, ext in (("voc2010_images", ".jpg"), ("context_labels", ".mat"))
               if not os.path.isfile(os.path.join(p[k], i + ext))]
    if lacking:
        print(f"{len(lacking)} files of the {split} split are missing; the first ones:",
              file=sys.stderr)
        return report_missing(lacking[:10])
    fn = functools.partial(convert_image, paths=p, kinds=kinds, overwrite=overwrite)
    for _ in progress_map(fn, ids, total=len(ids), workers=workers,
                          desc=f"pascal-context {split}"):
        pass
    print(f"pascal-context {split}: {len(ids)} images in {p['ctx_image_root']}, labels "
          + ", ".join(p[f"ctx{k}_root"] for k in kinds))
    return 0


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    root = resolve_root(args.root)
    kinds = (args.only,) if args.only else ("59", "459")
    status = 0
    for split in args.splits:
        status |= convert_split(root, split, kinds, args.overwrite, args.workers)
    return status


if __name__ == "__main__":
    sys.exit(main())
