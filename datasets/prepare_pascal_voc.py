#!/usr/bin/env python
"""Prepare PASCAL VOC 2012 semantic segmentation (21 classes with background) for detectron2.

The official ``SegmentationClass`` PNGs are palette images whose indices are the labels
(0 = background, 1..20 = classes, 255 = void border); they are written as plain uint8 PNGs of
those indices, which is what ODISE's PAS-21 evaluation reads. Images are copied unchanged.

Inputs:  VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/{train,val}.txt}
Outputs: pascal_voc_d2/images/{training,validation}/*.jpg
         pascal_voc_d2/annotations_pascal21/{training,validation}/*.png

Existing outputs are kept unless ``--overwrite``. Usage::

    python datasets/prepare_pascal_voc.py [--root DIR] [--splits val]
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

from odise_ext.data.datasets.prepare_utils import (
    copy_file,
    missing_inputs,
    progress_map,
    read_split_list,
    report_missing,
    run_per_split,
    save_image,
)
from odise_ext.data.datasets.register_pascal import PASCAL_SOURCES, pascal_paths

VALID = np.zeros(256, dtype=bool)
VALID[:21] = True
VALID[255] = True


def read_voc_label(path: str) -> np.ndarray:
    """Label indices of a VOC ``SegmentationClass`` PNG (palette or grayscale)."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: expected the official palette PNG, got mode {im.mode} "
                             "(was it converted to RGB?)")
        label = np.asarray(im, dtype=np.uint8)
    bad = np.unique(label[~VALID[label]])
    if bad.size:
        raise ValueError(f"{path}: label values {bad.tolist()} are not in 0..20 or 255")
    return label


def convert_image(image_id: str, paths: dict, overwrite: bool) -> None:
    out_image = os.path.join(paths["voc_image_root"], image_id + ".jpg")
    out_label = os.path.join(paths["voc_root"], image_id + ".png")
    if not overwrite and os.path.exists(out_image) and os.path.exists(out_label):
        return
    save_image(read_voc_label(os.path.join(paths["voc2012_labels"], image_id + ".png")), out_label)
    copy_file(os.path.join(paths["voc2012_images"], image_id + ".jpg"), out_image)


def convert_split(root: str, split: str, overwrite: bool = False, workers: int = 1) -> int:
    p = pascal_paths(root, split)
    missing = missing_inputs([(p[k], PASCAL_SOURCES[k])
                              for k in ("voc2012_images", "voc2012_labels", "voc2012_split")])
    if missing:
        return report_missing(missing)
    ids = read_split_list(p["voc2012_split"])
    lacking = [(os.path.join(p[k], i + ext), PASCAL_SOURCES[k]) for i in ids
               for k, ext in (("voc2012_images", ".jpg"), ("voc2012_labels", ".png"))
               if not os.path.isfile(os.path.join(p[k], i + ext))]
    if lacking:
        print(f"{len(lacking)} files of the {split} split are missing; the first ones:",
              file=sys.stderr)
        return report_missing(lacking[:10])
    fn = functools.partial(convert_image, paths=p, overwrite=overwrite)
    for _ in progress_map(fn, ids, total=len(ids), workers=workers, desc=f"pascal voc {split}"):
        pass
    print(f"pascal voc {split}: {len(ids)} images in {p['voc_image_root']}, labels in "
          f"{p['voc_root']}")
    return 0


def main(argv=None) -> int:
    return run_per_split(convert_split, get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
