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
    # colour-mapped depth (near = bright)
    python tools/demo.py --config-file configs/vpd/vpd_nyu_depth.yaml --input img.jpg --output depth.png
    # referring segmentation of one sentence
    python tools/demo.py --config-file configs/vpd/vpd_refcoco.yaml --input img.jpg --output ref.png \\
        --sentence "the man on the left"
    # keypoints of the given person boxes (x0,y0,x1,y1 in image pixels; default: the whole image)
    python tools/demo.py --config-file configs/vpd/vpd_coco_pose.yaml --input img.jpg --output pose.png \\
        --boxes "10,20,200,400;220,30,380,410"

Every drawing has the input image's size. Several inputs need ``--output`` to be a folder.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from detectron2.data import Metadata, MetadataCatalog  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

import odise_ext  # noqa: E402,F401
from odise_ext.config import setup_cfg  # noqa: E402
from odise_ext.modeling.open_vocab.vocabulary import parse_vocabulary  # noqa: E402
from odise_ext.modeling.vpd.predictor import VPDPredictor  # noqa: E402
from odise_ext.utils.atomic_io import atomic_save_image  # noqa: E402
from odise_ext.utils import vpd_vis  # noqa: E402
from odise_ext.utils.visualization import draw_panoptic, vocabulary_metadata  # noqa: E402


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--input", nargs="+", required=True, help="image files")
    p.add_argument("--output", required=True, help="output PNG (one input) or folder")
    p.add_argument("--vocab", default="", help="ODISE: classes 'a;b,synonym;c' (default: the test dataset's)")
    p.add_argument("--things", default="", help="ODISE: ';'-separated names of thing classes (default: all)")
    p.add_argument("--sentence", default="", help="referring segmentation: the referring expression")
    p.add_argument("--boxes", default="", help="pose: person boxes 'x0,y0,x1,y1;...' (default: the whole image)")
    p.add_argument("--keypoint-threshold", type=float, default=0.05, help="pose: lowest keypoint score drawn")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def parse_boxes(text):
    """'x0,y0,x1,y1;...' -> [M, 4] float32 (empty text -> None)."""
    if not text.strip():
        return None
    boxes = []
    for part in filter(None, (s.strip() for s in text.split(";"))):
        try:
            box = [float(v) for v in part.split(",")]
        except ValueError:
            raise SystemExit(f"--boxes: '{part}' is not four comma-separated numbers")
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise SystemExit(f"--boxes: '{part}' must be x0,y0,x1,y1 with x1 > x0 and y1 > y0")
        boxes.append(box)
    return np.asarray(boxes, dtype=np.float32)


# ---- task inputs, by META_ARCHITECTURE: (args, bgr image) -> predictor keyword arguments --------
def _sentence_input(args, bgr):
    if not args.sentence.strip():
        raise SystemExit("this referring-segmentation model needs --sentence \"...\"")
    return {"sentence": args.sentence}


def _box_input(args, bgr):
    boxes = parse_boxes(args.boxes)
    if boxes is None:
        h, w = bgr.shape[:2]
        boxes = np.array([[0.0, 0.0, w, h]], dtype=np.float32)
    return {"boxes": boxes}


def _no_input(args, bgr):
    return {}


TASK_INPUTS = {
    "VPDSemanticSegmentor": _no_input,
    "VPDDepthEstimator": _no_input,
    "VPDReferSegmentor": _sentence_input,
    "VPDPoseEstimator": _box_input,
}


# ---- drawing, by output key (the first key of this table found in the output is drawn) ----------
def _test_metadata(cfg):
    """Class / keypoint names of the config's first test dataset (empty without one)."""
    return MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else Metadata(name="demo")


def _draw_panoptic(rgb, output, ctx):
    seg, info = output["panoptic_seg"]
    return draw_panoptic(rgb, seg, info, ctx["metadata"]), f"{len(info)} segments"


def _draw_sem_seg(rgb, output, ctx):
    scores = output["sem_seg"]
    meta = ctx["metadata"]
    if not meta.get("stuff_classes", None):
        cfg = ctx["cfg"]
        names = list(cfg.MODEL.VPD.PROMPT.CLASS_NAMES) or [f"class {i}" for i in range(scores.shape[0])]
        meta = vpd_vis.semantic_metadata(names)
    present = len(scores.argmax(dim=0).unique())
    return vpd_vis.draw_sem_seg(rgb, scores, meta), f"{present} classes present"


def _draw_depth(rgb, output, ctx):
    depth = output["depth"]
    return vpd_vis.draw_depth(rgb, depth), f"depth {float(depth.min()):.2f}-{float(depth.max()):.2f} m"


def _draw_ref_mask(rgb, output, ctx):
    prob = output["ref_mask"]
    area = float((prob > 0.5).float().mean())
    return vpd_vis.draw_ref_mask(rgb, prob, ctx["args"].sentence), f"mask covers {100 * area:.1f}%"


def _draw_keypoints(rgb, output, ctx):
    inst = output["instances"]
    meta = ctx["metadata"]
    return vpd_vis.draw_keypoints(rgb, inst, meta, ctx["args"].keypoint_threshold), f"{len(inst)} people"


DRAWERS = {
    "panoptic_seg": _draw_panoptic,
    "sem_seg": _draw_sem_seg,
    "depth": _draw_depth,
    "ref_mask": _draw_ref_mask,
    "instances": _draw_keypoints,
}


def _odise_setup(args, model):
    """ODISE: the vocabulary from --vocab (or the model's test vocabulary) -> drawing metadata."""
    if args.vocab:
        things = [t.strip() for t in args.things.split(";") if t.strip()]
        model.set_test_vocabulary(parse_vocabulary(args.vocab, thing_names=things))
    return vocabulary_metadata(model.test_vocabulary.names)


def main(argv=None):
    args = get_parser().parse_args(argv)
    cfg = setup_cfg(args.config_file, args.opts)
    arch = cfg.MODEL.META_ARCHITECTURE
    task_inputs = TASK_INPUTS.get(arch)
    for flag, owner in (("sentence", _sentence_input), ("boxes", _box_input)):
        if getattr(args, flag) and task_inputs is not owner:
            raise SystemExit(f"--{flag} does not apply to {arch}")
    predictor = (VPDPredictor if task_inputs else DefaultPredictor)(cfg)
    model = predictor.model
    if hasattr(model, "set_test_vocabulary"):
        metadata = _odise_setup(args, model)
    elif args.vocab:
        raise SystemExit(f"--vocab applies to open-vocabulary models, not {arch}")
    else:
        metadata = _test_metadata(cfg)
    ctx = {"args": args, "cfg": cfg, "metadata": metadata}
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
        out = predictor(bgr, **task_inputs(args, bgr)) if task_inputs else predictor(bgr)
        key = next((k for k in DRAWERS if k in out), None)
        if key is None:
            raise SystemExit(
                f"no drawable output among {sorted(out)} (drawable: {list(DRAWERS)}); "
                "for ODISE enable MODEL.MASK_FORMER.TEST.PANOPTIC_ON"
            )
        drawn, summary = DRAWERS[key](np.ascontiguousarray(bgr[:, :, ::-1]), out, ctx)
        dst = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png") if many else args.output
        atomic_save_image(Image.fromarray(drawn), dst)  # never a half-written drawing
        print(f"{path}: {summary} -> {dst}")


if __name__ == "__main__":
    main()
