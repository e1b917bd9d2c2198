#!/usr/bin/env python
"""Check the Panoptic Narrative Grounding benchmark files under ``$DETECTRON2_DATASETS``.

Nothing is downloaded (the official files need a browser / licence acceptance); the script
reports exactly which file is missing and where to get it, then validates what is there:

- the PNG json schema (keys of every narrative and segment, numeric ids);
- every segment id exists in the image's COCO panoptic ``segments_info``;
- every referenced image and panoptic PNG exists;
- (``--check-pixels``) every referenced segment id has pixels in the panoptic PNG;
- and it counts narratives the loader will skip (no grounded phrase; utterances that do not
  match the caption in order).

Expected layout (official names)::

    $DETECTRON2_DATASETS/coco/
        annotations/png_coco_{train,val}2017.json
        annotations/panoptic_{train,val}2017.json
        panoptic_{train,val}2017/*.png
        {train,val}2017/*.jpg

Usage: ``python datasets/prepare_png.py [--root DIR] [--splits val] [--check-pixels]``.
Exit status 0 when everything needed is present and valid, 1 otherwise.
"""
import argparse
import json
import os
import sys
from collections import Counter


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"),
                        help="datasets directory (default: $DETECTRON2_DATASETS or ./datasets)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    parser.add_argument("--check-pixels", action="store_true",
                        help="also read every referenced panoptic PNG and check the ids have pixels (slow)")
    return parser


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

import numpy as np
from PIL import Image
from tqdm import tqdm

from odise_ext.data.datasets.register_png import PNG_COCO_SPLITS, validate_narrative
from odise_ext.data.phrases import locate_utterances

PNG_URL = "https://bcv-uniandes.github.io/panoptic-narrative-grounding/#downloads"
COCO_PANOPTIC_URL = "http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip"
MAX_ERRORS_SHOWN = 20


def _sources(split):
    """Where each required path comes from (shown when it is missing)."""
    return [
        f"Panoptic Narrative Grounding annotations ({PNG_URL}); save as coco/annotations/png_coco_{split}2017.json",
        f"COCO panoptic annotations ({COCO_PANOPTIC_URL}); the zip holds annotations/panoptic_{split}2017.json",
        f"COCO panoptic PNGs: unzip annotations/panoptic_{split}2017.zip from {COCO_PANOPTIC_URL} into coco/",
        f"COCO {split} images (http://images.cocodataset.org/zips/{split}2017.zip); unzip into coco/",
    ]


def check_split(root, split, check_pixels=False):
    """Validate one split; returns (problems: list[str], stats: Counter)."""
    name = f"png_coco_{split}2017"
    paths = [os.path.join(root, p) for p in PNG_COCO_SPLITS[name]]
    png_json, panoptic_json, panoptic_root, image_root = paths
    problems = []
    for path, source, is_dir in zip(paths, _sources(split), (False, False, True, True)):
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            problems.append(f"MISSING {path}\n    get it from: {source}")
    stats = Counter()
    if not (os.path.isfile(png_json) and os.path.isfile(panoptic_json)):
        return problems, stats

    print(f"[{name}] reading {panoptic_json} and {png_json} ...")
    with open(panoptic_json) as f:
        panoptic = json.load(f)
    with open(png_json) as f:
        narratives = json.load(f)
    if not isinstance(narratives, list):
        return problems + [f"INVALID {png_json}: expected a json list of narratives"], stats

    images = {img["id"]: img for img in panoptic["images"]}
    anns = {a["image_id"]: a for a in panoptic["annotations"]}
    isthing = {c["id"]: c["isthing"] for c in panoptic["categories"]}
    segments_of = {i: {s["id"]: s for s in a["segments_info"]} for i, a in anns.items()}
    errors, used_ids = [], {}
    for index, narr in enumerate(tqdm(narratives, desc=f"{name}: narratives")):
        stats["narratives"] += 1
        try:
            image_id = int(narr["image_id"]) if isinstance(narr, dict) and "image_id" in narr else None
            grounded = validate_narrative(index, narr, segments_of.get(image_id))
            if image_id not in images:
                raise ValueError(f"narrative #{index}: image {image_id} is not in the panoptic json's images")
        except (ValueError, TypeError) as e:
            errors.append(str(e))
            continue
        if not grounded:
            stats["skipped: no grounded phrase"] += 1
            continue
        if locate_utterances(narr["caption"], [s["utterance"] for s in narr["segments"]]) is None:
            stats["skipped: utterances do not match the caption"] += 1
            continue
        stats["narratives kept"] += 1
        for seg in grounded:
            stats["phrases"] += 1
            stats["plural phrases" if len(set(seg["segment_ids"])) >= 2 else "singular phrases"] += 1
            last = segments_of[image_id][seg["segment_ids"][-1]]
            stats["thing phrases" if isthing.get(last["category_id"]) else "stuff phrases"] += 1
            used_ids.setdefault(image_id, set()).update(seg["segment_ids"])

    missing_files = []
    for image_id in tqdm(sorted(used_ids), desc=f"{name}: images"):
        image = os.path.join(image_root, images[image_id]["file_name"])
        pan = os.path.join(panoptic_root, anns[image_id]["file_name"])
        missing_files += [p for p in (image, pan) if not os.path.isfile(p)]
        if check_pixels and os.path.isfile(pan):
            rgb = np.asarray(Image.open(pan).convert("RGB"), dtype=np.int64)
            present = set(np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist())
            absent = sorted(used_ids[image_id] - present)
            if absent:
                errors.append(f"image {image_id}: segment id(s) {absent} have no pixel in {pan}")
    if missing_files:
        problems.append(
            f"MISSING {len(missing_files)} image / panoptic PNG file(s) referenced by narratives, e.g. "
            + ", ".join(missing_files[:5])
        )
    if errors:
        shown = "\n    ".join(errors[:MAX_ERRORS_SHOWN])
        problems.append(f"INVALID {len(errors)} narrative(s) / image(s) in {png_json}:\n    {shown}")
    return problems, stats


def main(argv=None):
    args = get_parser().parse_args(argv)

    all_problems = []
    for split in args.splits:
        problems, stats = check_split(args.root, split, args.check_pixels)
        if stats:
            print(f"[png_coco_{split}2017] " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())))
        all_problems += problems
    if all_problems:
        print("\nProblems found:\n" + "\n".join(all_problems), file=sys.stderr)
        return 1
    print(f"\nAll PNG files for {args.splits} are present and valid under {args.root}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
