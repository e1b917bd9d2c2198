#!/usr/bin/env python
"""Index NYU Depth v2 for ``nyu_depth_v2_{train,test}`` (VPD / Meta-Prompts / BTS layout).

Nothing is downloaded. Expected inputs under ``$DETECTRON2_DATASETS/nyu`` (the layout of BTS,
GLPDepth and VPD)::

    sync/<scene>/rgb_XXXXX.jpg, sync/<scene>/sync_depth_XXXXX.png      (train, 24k frames;
                                                                         BTS's "sync.zip")
    official_splits/test/<scene>/rgb_XXXXX.jpg, .../sync_depth_XXXXX.png (654 test frames;
                                                                         from the labeled .mat,
                                                                         BTS's extract script)
    splits/nyudepthv2_train_files_with_gt.txt                          (BTS split files:
    splits/nyudepthv2_test_files_with_gt.txt                            "rgb depth focal" lines)

Depth PNGs are uint16 millimetres (``depth_scale`` 1000; 0 = no measurement). Output:
``nyu/train.json`` and ``nyu/test.json``, lists of ``{file_name, depth_file_name, image_id,
height, width}`` with paths relative to ``$DETECTRON2_DATASETS``.

Usage: ``python datasets/prepare_nyu.py [--root DIR] [--splits train test] [--skip-size-check]``.
Exit status 0 when every listed frame exists, 1 otherwise (nothing is written then).
"""
import argparse
import os
import sys

SPLITS = {
    "train": ("splits/nyudepthv2_train_files_with_gt.txt", "sync"),
    "test": ("splits/nyudepthv2_test_files_with_gt.txt", "official_splits/test"),
}


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    p.add_argument("--skip-size-check", action="store_true", help="assume 640x480 instead of opening images")
    return p


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

from PIL import Image
from tqdm import tqdm

from odise_ext.data.datasets.prepare_utils import read_bts_split_file, resolve_root, write_index

BTS_URL = "https://github.com/cleinc/bts (README: NYU Depth V2 sync.zip and the official test split)"


def index_split(nyu_root, split, check_size=True):
    """Returns (entries, problems)."""
    split_file, data_dir = SPLITS[split]
    split_path = os.path.join(nyu_root, split_file)
    if not os.path.isfile(split_path):
        return [], [f"missing split file {split_path} (BTS's train_test_inputs; {BTS_URL})"]
    entries, problems = [], []
    for i, (rgb, depth) in enumerate(tqdm(read_bts_split_file(split_path), desc=f"nyu {split}")):
        if depth is None:
            problems.append(f"{split_path}: {rgb} has no depth map (every NYUv2 frame has one)")
            continue
        rgb_path = os.path.join(nyu_root, data_dir, rgb)
        depth_path = os.path.join(nyu_root, data_dir, depth)
        missing = [p for p in (rgb_path, depth_path) if not os.path.isfile(p)]
        if missing:
            problems.extend(f"missing {p}" for p in missing)
            continue
        width, height = Image.open(rgb_path).size if check_size else (640, 480)
        entries.append({
            "file_name": os.path.relpath(rgb_path, os.path.dirname(nyu_root)),
            "depth_file_name": os.path.relpath(depth_path, os.path.dirname(nyu_root)),
            "image_id": i,
            "height": height,
            "width": width,
        })
    return entries, problems


def main(argv=None):
    args = get_parser().parse_args(argv)
    args.root = resolve_root(args.root)
    nyu_root = os.path.join(args.root, "nyu")
    failed = False
    for split in args.splits:
        entries, problems = index_split(nyu_root, split, not args.skip_size_check)
        out = os.path.join(nyu_root, f"{split}.json")
        failed |= not write_index(f"nyu {split}", entries, problems, out, f"wrote {len(entries)} frames to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
