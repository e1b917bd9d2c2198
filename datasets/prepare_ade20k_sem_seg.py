#!/usr/bin/env python
"""Write ADE20K-150 semantic labels in detectron2's convention (Mask2Former's preparation).

The official SceneParsing PNGs hold class k in 1..150 and 0 for "other"; the outputs hold
k - 1 (the contiguous class id) and 255 for "other" (ignored).

Input:   ade/ADEChallengeData2016/annotations/{training,validation}/*.png
Output:  ade/ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png (uint8)

Existing outputs are kept unless ``--overwrite``. Usage::

    python datasets/prepare_ade20k_sem_seg.py [--root DIR] [--splits val]
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
    missing_inputs,
    progress_map,
    report_missing,
    run_per_split,
    save_image,
)
from odise_ext.data.datasets.register_ade20k import ADE20K_SOURCES, ade20k_paths

NUM_CLASSES = 150


def read_label_png(path: str) -> np.ndarray:
    """A single-channel label PNG as uint8 (palette PNGs give their indices)."""
    with Image.open(path) as im:
        if im.mode not in ("L", "P"):
            raise ValueError(f"{path}: expected a single-channel label PNG, got mode {im.mode}")
        return np.asarray(im, dtype=np.uint8)


def convert_label(name: str, in_root: str, out_root: str, overwrite: bool) -> None:
    out = os.path.join(out_root, name)
    if os.path.exists(out) and not overwrite:
        return
    path = os.path.join(in_root, name)
    label = read_label_png(path)
    if label.max() > NUM_CLASSES:
        raise ValueError(f"{path}: class value {label.max()} > {NUM_CLASSES}")
    # uint8 arithmetic wraps 0 ("other") to 255, the ignore value.
    save_image(label - np.uint8(1), out)


def convert_split(root: str, split: str, overwrite: bool = False, workers: int = 1) -> int:
    p = ade20k_paths(root, split)
    missing = missing_inputs([(p["annotations"], ADE20K_SOURCES["annotations"])])
    if missing:
        return report_missing(missing)
    names = sorted(n for n in os.listdir(p["annotations"]) if n.endswith(".png"))
    if not names:
        print(f"No PNG in {p['annotations']}", file=sys.stderr)
        return 1
    os.makedirs(p["sem_seg_root"], exist_ok=True)
    fn = functools.partial(convert_label, in_root=p["annotations"], out_root=p["sem_seg_root"],
                           overwrite=overwrite)
    for _ in progress_map(fn, names, total=len(names), workers=workers,
                          desc=f"ade20k {split}: semantic labels"):
        pass
    print(f"Wrote {len(names)} label PNGs to {p['sem_seg_root']}")
    return 0


def main(argv=None) -> int:
    return run_per_split(convert_split, get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
