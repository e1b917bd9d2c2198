#!/usr/bin/env python
"""Run a model on your own images and draw its output.

ODISE (open-vocabulary panoptic segmentation):

    python tools/demo.py --config-file configs/odise_coco.yaml --input img.jpg \\
        --vocab "cat;dog,puppy;sky" --output out.png --opts MODEL.WEIGHTS model.pth

``--vocab`` lists classes separated by ';' and synonyms by ','; ``--things`` names the classes
that are countable objects (default: all). Without ``--vocab`` the config's test dataset classes
are used.

VPD / Meta-Prompts (the drawing follows the model's output):

    # semantic segmentation map (class names of the config's test dataset)
    python tools/demo.py --config-file configs/vpd/vpd_ade20k_semseg.yaml --input img.jpg --output seg.png
    # colour-mapped depth (near = bright); VPD's NYUv2 model is prompted with the scene class
    python tools/demo.py --config-file configs/vpd/vpd_nyu_depth.yaml --input img.jpg --output depth.png \\
        --scene living_room
    # referring segmentation of one sentence
    python tools/demo.py --config-file configs/vpd/vpd_refcoco.yaml --input img.jpg --output ref.png \\
        --sentence "the man on the left"
    # keypoints of the given person boxes (x0,y0,x1,y1 in image pixels; default: the whole image)
    python tools/demo.py --config-file configs/vpd/vpd_coco_pose.yaml --input img.jpg --output pose.png \\
        --boxes "10,20,200,400;220,30,380,410"

Panoptic Narrative Grounding (one coloured mask per phrase, the narrative underneath):

    python tools/demo.py --config-file configs/quickstart/png_shapes.yaml --input img.png --output png.png \\
        --narrative "a red circle above the sand and the water" --phrases "a red circle;the sand;the water" \\
        --opts MODEL.WEIGHTS output/png_quickstart/model_final.pth

Without ``--phrases``, the narrative's noun phrases are grounded. Drawings of images smaller than
512 px are enlarged (by a whole factor) to at least 512 px on the long side. Several inputs need
``--output`` to be a folder. Every input file is checked before the model is built.
"""
import argparse
import os
import sys

# Task flags: each model's demo entry (odise_ext/<task>/hooks.py) lists the ones it reads.
TASK_FLAGS = ("vocab", "things", "sentence", "scene", "boxes", "narrative", "phrases")


def parse_boxes(text, width, height):
    """Person boxes of ``--boxes`` (part of this tool's interface; see odise_ext/dense/hooks.py)."""
    from odise_ext.dense.hooks import parse_boxes as parse

    return parse(text, width, height)


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--input", nargs="+", required=True, help="image files")
    p.add_argument("--output", required=True, help="output PNG (one input) or folder")
    p.add_argument("--vocab", default="", help="ODISE: classes 'a;b,synonym;c' (default: the test dataset's)")
    p.add_argument("--things", default="", help="ODISE: ';'-separated names of thing classes (default: all)")
    p.add_argument("--sentence", default="", help="referring segmentation: the referring expression")
    p.add_argument("--scene", default="", help="VPD depth: the scene class (one of MODEL.VPD.PROMPT.SCENE_CLASSES)")
    p.add_argument("--boxes", default="", help="pose: person boxes 'x0,y0,x1,y1;...' (default: the whole image)")
    p.add_argument("--narrative", default="", help="PNG: the narrative to ground (required for PNG models)")
    p.add_argument("--phrases", default="", help="PNG: ';'-separated phrases of the narrative to ground, e.g. "
                   "'a dog;the grass' (default: its noun phrases)")
    p.add_argument("--keypoint-threshold", type=float, default=0.05, help="pose: lowest keypoint score drawn")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def check_inputs(paths, output):
    """Every --input is a readable file and --output can be written, before anything is imported."""
    for path in paths:
        if os.path.isdir(path):
            raise SystemExit(f"--input: '{path}' is a directory, not an image file")
        if not os.path.exists(path):
            raise SystemExit(f"--input: image '{path}' does not exist")
    if len(paths) > 1 and os.path.isfile(output):
        raise SystemExit(f"--output {output} is a file; several inputs need a folder")
    parent = os.path.dirname(os.path.abspath(output)) if len(paths) == 1 else os.path.abspath(output)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise SystemExit(f"--output {output}: {parent} is not writable")


def main(argv=None):
    args = get_parser().parse_args(argv)
    check_inputs(args.input, args.output)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    import odise_ext  # noqa: F401  (registers models and their demo entries)
    from odise_ext.config.early_checks import checked_cfg
    from odise_ext.data.image_io import read_image
    from odise_ext.engine.demo import DEMO_REGISTRY
    from odise_ext.utils.atomic_io import atomic_save_image

    cfg = checked_cfg(args.config_file, args.opts)  # keys, device, weight files: before the build
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch not in DEMO_REGISTRY:
        raise SystemExit(f"no demo entry for {arch}; models with one: {sorted(name for name, _ in DEMO_REGISTRY)}")
    task = DEMO_REGISTRY.get(arch)(cfg, args)
    task.check_args()  # before the (slow) model build
    for flag in TASK_FLAGS:
        if getattr(args, flag) and flag not in task.flags:
            raise SystemExit(f"--{flag} does not apply to {arch}")

    def read(path):
        try:  # 16-bit, grayscale, palette, alpha: converted; unreadable: refused (image_io)
            return read_image(path, format="BGR")
        except (OSError, ValueError) as e:  # the messages name the file
            raise SystemExit(f"cannot use {e}" if str(e).startswith("image '") else f"cannot read '{path}': {e}")

    for path in args.input:  # every image decodes, before the (slow) model build
        read(path)
    predictor = task.build_predictor()
    metadata = task.metadata(predictor.model)
    many = len(args.input) > 1
    if many:
        os.makedirs(args.output, exist_ok=True)
    for path in tqdm(args.input, disable=not many):
        bgr = read(path)
        out = predictor(bgr, **task.inputs(bgr))
        drawn, summary = task.draw(np.ascontiguousarray(bgr[:, :, ::-1]), out, metadata)
        dst = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png") if many else args.output
        atomic_save_image(Image.fromarray(drawn), dst)  # never a half-written drawing
        print(f"{path}: {summary} -> {dst}")


if __name__ == "__main__":
    from one_line_errors import run

    run(main)
