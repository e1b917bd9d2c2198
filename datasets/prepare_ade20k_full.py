#!/usr/bin/env python
"""Prepare ADE20K-847 (the full ADE20K release) for semantic-segmentation evaluation.

As Mask2Former's preparation, which ODISE's A-847 numbers use:

- the class of a pixel is decoded from the official ``*_seg.png`` as ``R // 10 * 256 + G``
  (the index in the full ADE20K object list) and mapped to the 847 evaluated classes
  (``ADE20K_847_CATEGORIES``); every other object, and unlabelled pixels, become 65535 (void);
- images whose short side exceeds 512 px are resized to a 512 px short side (image: bilinear,
  labels: nearest, same index rule as OpenCV's ``INTER_NEAREST``); images are re-encoded as
  JPEG with PIL's default quality, as that preparation does;
- the split comes from the file name: ``ADE_val_*`` is validation, all others training.

Inputs:  ade/ADE20K_2021_17_01/index_ade20k.pkl and the images / ``*_seg.png`` it lists
Outputs: ade/ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg
         ade/ADE20K_2021_17_01/annotations_detectron2/{training,validation}/*.tif (uint16)

Images whose two outputs exist are skipped unless ``--overwrite``. Usage::

    python datasets/prepare_ade20k_full.py [--root DIR] [--splits val]
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
    return parser


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from odise_ext.data.datasets.categories import ADE20K_847_CATEGORIES
from odise_ext.data.datasets.prepare_utils import (
    missing_inputs,
    progress_map,
    report_missing,
    resolve_root,
    save_image,
)
from odise_ext.data.datasets.register_ade20k import ADE20K_SOURCES, ade20k_paths
from odise_ext.utils.safe_load import safe_pickle_load

VOID = 65535
MAX_SHORT_SIDE = 512
# full ADE20K object index (R // 10 * 256 + G <= 25 * 256 + 255) -> contiguous id or VOID
LOOKUP = np.full(26 * 256, VOID, dtype=np.uint16)
for _c in ADE20K_847_CATEGORIES:
    LOOKUP[_c["ade_id"]] = _c["id"]


def target_size(h: int, w: int):
    """(h, w) after shrinking the short side to 512 px (unchanged if it is not larger)."""
    if min(h, w) <= MAX_SHORT_SIDE:
        return h, w
    if w >= h:
        return MAX_SHORT_SIDE, round(w / h * MAX_SHORT_SIDE)
    return round(h / w * MAX_SHORT_SIDE), MAX_SHORT_SIDE


def resize_nearest(label: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest neighbour with source index floor(dst * in / out), as OpenCV's INTER_NEAREST."""
    ys = np.minimum((np.arange(h) * (label.shape[0] / h)).astype(np.int64), label.shape[0] - 1)
    xs = np.minimum((np.arange(w) * (label.shape[1] / w)).astype(np.int64), label.shape[1] - 1)
    return label[ys[:, None], xs[None, :]]


def resize_bilinear(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear with half-pixel centres and no antialiasing (OpenCV's INTER_LINEAR, up to
    rounding)."""
    t = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()  # a writable copy
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def decode_classes(seg_png: str) -> np.ndarray:
    """Full-ADE20K object index of every pixel of an official ``*_seg.png``."""
    with Image.open(seg_png) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    return rgb[..., 0] // 10 * 256 + rgb[..., 1]


def convert_image(item, image_dirs, label_dirs, overwrite: bool) -> None:
    """``item`` = (split, image path); writes the resized image and its 847-class label."""
    split, image_path = item
    stem = os.path.splitext(os.path.basename(image_path))[0]
    out_image = os.path.join(image_dirs[split], stem + ".jpg")
    out_label = os.path.join(label_dirs[split], stem + ".tif")
    if not overwrite and os.path.exists(out_image) and os.path.exists(out_label):
        return
    seg_png = os.path.splitext(image_path)[0] + "_seg.png"
    with Image.open(image_path) as im:
        image = np.asarray(im.convert("RGB"))
    classes = decode_classes(seg_png)
    if classes.shape != image.shape[:2]:
        raise ValueError(f"{seg_png} is {classes.shape}, its image is {image.shape[:2]}")
    label = LOOKUP[classes]
    h, w = target_size(*label.shape)
    if (h, w) != label.shape:
        image = resize_bilinear(image, h, w)
        label = resize_nearest(label, h, w)
    save_image(image, out_image)
    save_image(label, out_label)


def list_images(root: str, index_file: str):
    """[(split, image path)] from ``index_ade20k.pkl`` (its folders are relative to ade/)."""
    index = safe_pickle_load(index_file)  # containers and numpy arrays only: no code runs from the file
    for key in ("folder", "filename"):
        if key not in index:
            raise KeyError(f"{index_file} has no '{key}' entry (keys: {sorted(index)})")
    items = []
    for folder, name in zip(index["folder"], index["filename"]):
        # Mask2Former's rule: "ADE_val_*" is validation, everything else (ADE_train_*,
        # ADE_frame_*) training.
        split = "val" if name.split("_")[1:2] == ["val"] else "train"
        items.append((split, os.path.join(root, "ade", folder, name)))
    return items


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    root = resolve_root(args.root)
    p = {split: ade20k_paths(root, split) for split in ("train", "val")}
    missing = missing_inputs([(p["val"]["full_index"], ADE20K_SOURCES["full_index"])])
    if missing:
        return report_missing(missing)
    items = [it for it in list_images(root, p["val"]["full_index"]) if it[0] in args.splits]
    lacking = [(path, ADE20K_SOURCES["full_index"]) for _, image in items
               for path in (image, os.path.splitext(image)[0] + "_seg.png")
               if not os.path.isfile(path)]
    if lacking:
        print(f"{len(lacking)} files listed in index_ade20k.pkl are missing; the first ones:",
              file=sys.stderr)
        return report_missing(lacking[:10])
    image_dirs = {s: p[s]["full_image_root"] for s in p}
    label_dirs = {s: p[s]["full_sem_seg_root"] for s in p}
    fn = functools.partial(convert_image, image_dirs=image_dirs, label_dirs=label_dirs,
                           overwrite=args.overwrite)
    for _ in progress_map(fn, items, total=len(items), workers=args.workers,
                          desc="ade20k-847: images and labels"):
        pass
    for split in args.splits:
        print(f"ade20k-847 {split}: {sum(1 for s, _ in items if s == split)} images in "
              f"{image_dirs[split]}, labels in {label_dirs[split]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
