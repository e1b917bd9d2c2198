#!/usr/bin/env python
"""Convert RefCOCO / RefCOCO+ / RefCOCOg (UNC, UMD and Google splits) to the json files that
``register_vpd`` reads (one file per dataset, split-by and split).

Nothing is downloaded. Expected inputs (the ``refer`` API's data layout) under
``$DETECTRON2_DATASETS``::

    refcoco/refcoco/refs(unc).p,      refcoco/refcoco/instances.json
    refcoco/refcoco+/refs(unc).p,     refcoco/refcoco+/instances.json
    refcoco/refcocog/refs(umd).p,     refcoco/refcocog/refs(google).p,  refcoco/refcocog/instances.json
    coco/train2014/*.jpg              (the images of all three datasets)

Output: ``refcoco/<dataset>_<splitby>_<split>.json``: a list of referred objects with
``ref_id, ann_id, image_id, file_name, height, width, category_id, bbox (XYWH), segmentation``
and ``sentences`` (the raw expressions).

Usage: ``python datasets/prepare_refcoco.py [--root DIR] [--datasets refcoco refcoco+ refcocog]
[--check-images]``. Exit status 0 when every requested input exists and is consistent.
"""
import argparse
import json
import os
import sys
from collections import defaultdict

SPLIT_BYS = {"refcoco": ("unc",), "refcoco+": ("unc",), "refcocog": ("umd", "google")}


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)")
    p.add_argument("--datasets", nargs="+", default=list(SPLIT_BYS), choices=list(SPLIT_BYS))
    p.add_argument("--check-images", action="store_true", help="also check that every image file exists")
    return p


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

from tqdm import tqdm

from odise_ext.data.datasets.prepare_utils import report_problems, resolve_root, write_index
from odise_ext.utils.safe_load import safe_pickle_load

REFER_URL = "https://github.com/lichengunc/refer (data: refcoco.zip, refcoco+.zip, refcocog.zip)"


def convert(refs, instances):
    """Group the refs by split; returns ({split: [entry]}, problems)."""
    images = {im["id"]: im for im in instances["images"]}
    anns = {a["id"]: a for a in instances["annotations"]}
    out, problems = defaultdict(list), []
    for ref in tqdm(refs, desc="refs"):
        ann, image = anns.get(ref["ann_id"]), images.get(ref["image_id"])
        if ann is None or image is None:
            problems.append(f"ref {ref['ref_id']}: annotation {ref['ann_id']} or image {ref['image_id']} not in instances.json")
            continue
        sentences = [s["sent"] if "sent" in s else s["raw"] for s in ref["sentences"]]
        if not sentences:
            problems.append(f"ref {ref['ref_id']}: no sentences")
            continue
        out[ref["split"]].append({
            "ref_id": ref["ref_id"],
            "ann_id": ref["ann_id"],
            "image_id": ref["image_id"],
            "file_name": image["file_name"],
            "height": image["height"],
            "width": image["width"],
            "category_id": ann["category_id"],
            "bbox": ann["bbox"],
            "segmentation": ann["segmentation"],
            "sentences": sentences,
        })
    return dict(out), problems


def main(argv=None):
    args = get_parser().parse_args(argv)
    args.root = resolve_root(args.root)
    base = os.path.join(args.root, "refcoco")
    failed = False
    for dataset in args.datasets:
        inst_path = os.path.join(base, dataset, "instances.json")
        ref_paths = {by: os.path.join(base, dataset, f"refs({by}).p") for by in SPLIT_BYS[dataset]}
        missing = [q for q in [inst_path, *ref_paths.values()] if not os.path.isfile(q)]
        if missing:
            failed = True
            print(f"[{dataset}] missing input(s) ({REFER_URL}):", *missing, sep="\n  ")
            continue
        with open(inst_path) as f:
            instances = json.load(f)
        for split_by, ref_path in ref_paths.items():
            refs = safe_pickle_load(ref_path)  # lists and dicts only: no code runs from the file
            splits, problems = convert(refs, instances)
            if args.check_images:
                image_root = os.path.join(args.root, "coco", "train2014")
                names = {e["file_name"] for entries in splits.values() for e in entries}
                problems += [f"missing image {os.path.join(image_root, n)}" for n in sorted(names)
                             if not os.path.isfile(os.path.join(image_root, n))]
            if report_problems(f"{dataset} {split_by}", problems):
                failed = True
                continue
            for split, entries in sorted(splits.items()):
                out = os.path.join(base, f"{dataset}_{split_by}_{split}.json")
                n_sent = sum(len(e["sentences"]) for e in entries)
                write_index(f"{dataset} {split_by}", entries, [], out,
                            f"{split}: {len(entries)} objects, {n_sent} sentences -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
