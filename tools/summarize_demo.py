#!/usr/bin/env python
"""Print the untrained-vs-trained table of `make demo` from two eval_results.json files."""
import json
import os
import sys

KEYS = [("panoptic_seg", "PQ"), ("panoptic_seg", "SQ"), ("panoptic_seg", "RQ"), ("panoptic_seg", "PQ_th"),
        ("panoptic_seg", "PQ_st"), ("sem_seg", "mIoU"), ("sem_seg", "pACC")]


def load(folder):
    path = os.path.join(os.path.dirname(folder.rstrip("/")), "eval_results.json") if not folder.endswith(".json") else folder
    if not os.path.exists(path):
        raise SystemExit(f"no evaluation results at {path}: did the evaluation step fail?")
    with open(path) as f:
        res = json.load(f)
    # {dataset: {task: {metric}}} when several test sets, {task: {metric}} for one
    return next(iter(res.values())) if res and all(isinstance(v, dict) and "panoptic_seg" in v for v in res.values()) else res


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: summarize_demo.py UNTRAINED_INFERENCE_DIR TRAINED_INFERENCE_DIR")
    before, after = load(argv[0]), load(argv[1])
    print(f"{'metric':<20}{'untrained':>12}{'trained':>12}")
    for task, key in KEYS:
        if key in before.get(task, {}) and key in after.get(task, {}):
            print(f"{task + '/' + key:<20}{before[task][key]:>12.2f}{after[task][key]:>12.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
