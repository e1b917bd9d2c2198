#!/usr/bin/env python
"""Open-vocabulary panoptic segmentation of your own images.

    python tools/demo.py --config-file configs/odise_coco.yaml --input img.jpg \\
        --vocab "cat;dog,puppy;sky" --output out.png --opts MODEL.WEIGHTS model.pth

``--vocab`` lists classes separated by ';' and synonyms by ','; ``--things`` names the classes
that are countable objects (default: all). Without ``--vocab`` the config's test dataset classes
are used. Several inputs need ``--output`` to be a folder.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

import odise_ext  # noqa: E402,F401
from odise_ext.config import setup_cfg  # noqa: E402
from odise_ext.modeling.open_vocab.vocabulary import parse_vocabulary  # noqa: E402
from odise_ext.utils.visualization import draw_panoptic, vocabulary_metadata  # noqa: E402


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--input", nargs="+", required=True, help="image files")
    p.add_argument("--output", required=True, help="output PNG (one input) or folder")
    p.add_argument("--vocab", default="", help="classes 'a;b,synonym;c' (default: the test dataset's)")
    p.add_argument("--things", default="", help="';'-separated names of thing classes (default: all)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    cfg = setup_cfg(args.config_file, args.opts)
    predictor = DefaultPredictor(cfg)
    model = predictor.model
    if args.vocab:
        things = [t.strip() for t in args.things.split(";") if t.strip()]
        model.set_test_vocabulary(parse_vocabulary(args.vocab, thing_names=things))
    metadata = vocabulary_metadata(model.test_vocabulary.names)
    many = len(args.input) > 1
    if many:
        os.makedirs(args.output, exist_ok=True)
    for path in tqdm(args.input, disable=not many):
        try:
            bgr = read_image(path, format="BGR")
        except Exception as e:  # PIL's messages do not always name the file
            raise SystemExit(f"cannot read image '{path}': {e}")
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            raise SystemExit(f"'{path}' is not a 3-channel image (shape {bgr.shape})")
        out = predictor(bgr)
        if "panoptic_seg" not in out:
            raise SystemExit("the model produced no panoptic result: enable MODEL.MASK_FORMER.TEST.PANOPTIC_ON")
        seg, info = out["panoptic_seg"]
        drawn = draw_panoptic(np.ascontiguousarray(bgr[:, :, ::-1]), seg, info, metadata)
        dst = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png") if many else args.output
        Image.fromarray(drawn).save(dst)
        print(f"{path}: {len(info)} segments -> {dst}")


if __name__ == "__main__":
    main()
