#!/usr/bin/env python
"""Write Cityscapes' 19-class train-id labels for ``vpd_cityscapes_fine_sem_seg_{train,val}``.

Nothing is downloaded. Inputs under ``$DETECTRON2_DATASETS/cityscapes`` (the official
``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``, https://www.cityscapes-dataset.com
/downloads/, unzipped there)::

    leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
    gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png
    gtFine/{train,val}/<city>/<stem>_gtFine_polygons.json     (detectron2 reads the image size)
    gtFine/{train,val}/<city>/<stem>_gtFine_instanceIds.png   (detectron2's loader checks it)

Output, beside them: ``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (uint8; the 19
evaluated classes 0..18, everything else 255). This is what cityscapesscripts'
``createTrainIdLabelImgs.py`` writes: that tool paints every polygon with its label's train id
where ``json2labelImg`` paints it with its label id, so mapping each label id to its train id
pixel-wise gives the same image (``CITYSCAPES_ID_TO_TRAIN_ID`` below, from the official label
table). Existing outputs are kept unless ``--overwrite``.

Usage::

    python datasets/prepare_cityscapes.py [--root DIR] [--splits train val] [--overwrite]

Exit status 0 on success; 1 when inputs are missing (each one is named; nothing is written).
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
    progress_map,
    report_missing,
    run_per_split,
    save_image,
)

DOWNLOAD = "https://www.cityscapes-dataset.com/downloads/ ({}, unzip into <root>/cityscapes/)"
IMAGES_ZIP, GT_ZIP = "leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"

# Official Cityscapes label id -> train id of the 19 evaluated classes; every other id -> 255.
CITYSCAPES_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
MAX_LABEL_ID = 33


def train_id_lut() -> np.ndarray:
    """[256] uint8 look-up table label id -> train id."""
    lut = np.full(256, 255, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


def list_frames(root: str, split: str):
    """(frames, missing): frames are (city, stem) pairs of the split's images; missing lists
    (path, how to get it) for absent folders and ground-truth files."""
    image_dir = os.path.join(root, "cityscapes", "leftImg8bit", split)
    gt_dir = os.path.join(root, "cityscapes", "gtFine", split)
    missing = [(d, DOWNLOAD.format(z)) for d, z in ((image_dir, IMAGES_ZIP), (gt_dir, GT_ZIP)) if not os.path.isdir(d)]
    if missing:
        return [], missing
    frames = []
    for city in sorted(os.listdir(image_dir)):
        city_dir = os.path.join(image_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if name.endswith("_leftImg8bit.png"):
                frames.append((city, name[: -len("_leftImg8bit.png")]))
    for city, stem in frames:
        for suffix in ("_gtFine_labelIds.png", "_gtFine_polygons.json", "_gtFine_instanceIds.png"):
            path = os.path.join(gt_dir, city, stem + suffix)
            if not os.path.isfile(path):
                missing.append((path, DOWNLOAD.format(GT_ZIP)))
    if not frames:
        missing.append((os.path.join(image_dir, "<city>", "*_leftImg8bit.png"), DOWNLOAD.format(IMAGES_ZIP)))
    return frames, missing


def convert_frame(frame, gt_dir: str, overwrite: bool) -> None:
    city, stem = frame
    out = os.path.join(gt_dir, city, f"{stem}_gtFine_labelTrainIds.png")
    if os.path.exists(out) and not overwrite:
        return
    src = os.path.join(gt_dir, city, f"{stem}_gtFine_labelIds.png")
    with Image.open(src) as im:
        if im.mode not in ("L", "P"):
            raise ValueError(f"{src}: expected a single-channel label-id PNG, got mode {im.mode}")
        ids = np.asarray(im, dtype=np.uint8)
    if ids.max() > MAX_LABEL_ID:
        raise ValueError(f"{src}: label id {ids.max()} is not a Cityscapes id (0..{MAX_LABEL_ID})")
    save_image(train_id_lut()[ids], out)


def convert_split(root: str, split: str, overwrite: bool = False, workers: int = 1) -> int:
    frames, missing = list_frames(root, split)
    if missing:
        return report_missing(missing)
    gt_dir = os.path.join(root, "cityscapes", "gtFine", split)
    fn = functools.partial(convert_frame, gt_dir=gt_dir, overwrite=overwrite)
    for _ in progress_map(fn, frames, total=len(frames), workers=workers, desc=f"cityscapes {split}: train ids"):
        pass
    print(f"[cityscapes {split}] {len(frames)} *_gtFine_labelTrainIds.png under {gt_dir}")
    return 0


def main(argv=None) -> int:
    return run_per_split(convert_split, get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
