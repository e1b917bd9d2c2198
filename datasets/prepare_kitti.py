#!/usr/bin/env python
"""Index KITTI's Eigen split for ``kitti_depth_eigen_{train,test}`` (BTS / VPD protocol).

Nothing is downloaded. Expected inputs under ``$DETECTRON2_DATASETS/kitti``::

    raw/<date>/<date>_drive_XXXX_sync/image_02/data/*.png       (KITTI raw data)
    gt/<date>_drive_XXXX_sync/proj_depth/groundtruth/image_02/*.png
                                    (KITTI depth benchmark "data_depth_annotated", train and val
                                     drives merged into gt/)
    splits/eigen_train_files_with_gt.txt, splits/eigen_test_files_with_gt.txt
                                    (BTS split files: "rgb gt focal"; gt may be "None")

Ground-truth PNGs are uint16 with ``depth_scale`` 256 (0 = no measurement). Frames whose ground
truth is "None" are skipped (BTS evaluates 652 of the 697 Eigen test frames). Evaluate with
``MODEL.DEPTH_HEAD.EVAL_CROP "garg"`` (or "eigen") and ``DATA.DEPTH.KB_CROP True``.

Output: ``kitti/eigen_{train,test}.json`` (paths relative to ``$DETECTRON2_DATASETS``).
Usage: ``python datasets/prepare_kitti.py [--root DIR] [--splits train test]``.
Exit status 0 when every listed frame exists, 1 otherwise (nothing is written then).
"""
import argparse
import os
import sys

SPLITS = {"train": "splits/eigen_train_files_with_gt.txt", "test": "splits/eigen_test_files_with_gt.txt"}


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    return p


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

from PIL import Image
from tqdm import tqdm

from odise_ext.data.datasets.prepare_utils import read_bts_split_file, resolve_root, write_index

KITTI_URL = "https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_prediction"


def index_split(kitti_root, split):
    """Returns (entries, skipped_without_gt, problems)."""
    split_path = os.path.join(kitti_root, SPLITS[split])
    if not os.path.isfile(split_path):
        return [], 0, [f"missing split file {split_path} (BTS's train_test_inputs)"]
    entries, skipped, problems = [], 0, []
    for i, (rgb, gt) in enumerate(tqdm(read_bts_split_file(split_path), desc=f"kitti {split}")):
        if gt is None:
            skipped += 1
            continue
        rgb_path = os.path.join(kitti_root, "raw", rgb)
        gt_path = os.path.join(kitti_root, "gt", gt)
        missing = [p for p in (rgb_path, gt_path) if not os.path.isfile(p)]
        if missing:
            problems.extend(f"missing {p} (KITTI raw / depth annotated: {KITTI_URL})" for p in missing)
            continue
        width, height = Image.open(rgb_path).size
        entries.append({
            "file_name": os.path.relpath(rgb_path, os.path.dirname(kitti_root)),
            "depth_file_name": os.path.relpath(gt_path, os.path.dirname(kitti_root)),
            "image_id": i,
            "height": height,
            "width": width,
        })
    return entries, skipped, problems


def main(argv=None):
    args = get_parser().parse_args(argv)
    args.root = resolve_root(args.root)
    kitti_root = os.path.join(args.root, "kitti")
    failed = False
    for split in args.splits:
        entries, skipped, problems = index_split(kitti_root, split)
        out = os.path.join(kitti_root, f"eigen_{split}.json")
        summary = f"wrote {len(entries)} frames to {out} ({skipped} without ground truth skipped)"
        failed |= not write_index(f"kitti {split}", entries, problems, out, summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
