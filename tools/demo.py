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

Every drawing has the input image's size. Several inputs need ``--output`` to be a folder; each
drawing is named after its input (``img.jpg`` -> ``img.png``), inputs of the same base name get
``_1``, ``_2``, ... in their order, so no drawing overwrites another. Images over
``DATA.MAX_INPUT_PIXELS`` pixels are refused before they are decoded.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

import odise_ext  # noqa: E402,F401  (registers models and their demo entries)
from odise_ext.config import setup_cfg  # noqa: E402
from odise_ext.data.image_io import read_image  # noqa: E402
from odise_ext.engine.demo import demo_class  # noqa: E402
from odise_ext.engine.predictor import check_image_pixels  # noqa: E402
from odise_ext.utils.atomic_io import atomic_save_image  # noqa: E402
from odise_ext.utils.cli import exit_on_config_error  # noqa: E402

# Task flags: each model's demo entry (odise_ext/<task>/hooks.py) lists the ones it reads.
TASK_FLAGS = ("vocab", "things", "sentence", "scene", "boxes")


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
    p.add_argument("--keypoint-threshold", type=float, default=0.05, help="pose: lowest keypoint score drawn")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def output_paths(inputs, folder):
    """One drawing path per input in ``folder``: ``<base name>.png``, then ``<base>_1.png``, ...
    for later inputs whose name is taken (same base name, or the same file given twice)."""
    used, out = set(), []
    for path in inputs:
        base = os.path.splitext(os.path.basename(path))[0]
        name, i = base, 0
        while name.lower() in used:  # case-insensitive file systems would merge A.png and a.png
            i += 1
            name = f"{base}_{i}"
        used.add(name.lower())
        out.append(os.path.join(folder, name + ".png"))
    return out


def _header_size(path):
    """(height, width) from the file's header (no decoding); None where PIL cannot tell."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # read_image below names the problem
        return None


@exit_on_config_error
def main(argv=None):
    args = get_parser().parse_args(argv)
    cfg = setup_cfg(args.config_file, args.opts)
    arch = cfg.MODEL.META_ARCHITECTURE
    try:
        task = demo_class(arch)(cfg, args)
    except KeyError as e:
        raise SystemExit(e.args[0]) from None
    task.check_args()  # before the (slow) model build
    for flag in TASK_FLAGS:
        if getattr(args, flag) and flag not in task.flags:
            raise SystemExit(f"--{flag} does not apply to {arch}")
    predictor = task.build_predictor()
    metadata = task.metadata(predictor.model)
    many = len(args.input) > 1
    if many:
        os.makedirs(args.output, exist_ok=True)
    dsts = output_paths(args.input, args.output) if many else [args.output]
    for path, dst in tqdm(list(zip(args.input, dsts)), disable=not many):
        try:  # 16-bit, grayscale, palette, alpha: converted; unreadable: refused (image_io)
            size = _header_size(path)
            if size is not None:
                check_image_pixels(*size, cfg.DATA.MAX_INPUT_PIXELS, name=path)
            bgr = read_image(path, format="BGR")
        except (OSError, ValueError) as e:  # the messages name the file
            raise SystemExit(f"cannot use {e}" if str(e).startswith("image '") else f"cannot read '{path}': {e}")
        out = predictor(bgr, **task.inputs(bgr))
        drawn, summary = task.draw(np.ascontiguousarray(bgr[:, :, ::-1]), out, metadata)
        atomic_save_image(Image.fromarray(drawn), dst)  # never a half-written drawing
        print(f"{path}: {summary} -> {dst}")


if __name__ == "__main__":
    main()
