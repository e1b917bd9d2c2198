#!/usr/bin/env python
"""Run a model on your own images (or a video) and draw its output.

With no model flag, ODISE's released label model (``odise://label_coco_50e``) is downloaded,
verified and converted on first use, with its config and base weights (docs/zoo-downloads.md)::

    python tools/demo.py --input img.jpg --output out.png
    python tools/demo.py --input "photos/*.jpg" --output drawn/ --label coco --vocab "teddy bear"
    python tools/demo.py --video-input clip.mp4 --output clip_drawn.mp4
    python tools/demo.py --model vpd://nyu_depth --input room.jpg --output depth.png --scene living_room

``--model`` takes any zoo name (``python -m odise_ext.zoo list``); its config is used unless
``--config-file`` is given. ``--input`` takes files, folders and glob patterns. ``--label
coco|ade20k`` puts a dataset's classes in front of the ``--vocab`` classes.

ODISE (open-vocabulary panoptic segmentation) with a config and weights of your own:

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
import glob
import os
import sys

# torch, detectron2 and odise_ext are imported after the command line is parsed and the input
# files are checked: --help and argument errors answer at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = "odise://label_coco_50e"  # what runs without --config-file / --model
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Task flags: each model's demo entry (odise_ext/<task>/hooks.py) lists the ones it reads.
TASK_FLAGS = ("vocab", "things", "sentence", "scene", "boxes", "narrative", "phrases")


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", help="config (default: the --model zoo entry's)")
    p.add_argument("--model", default="", help=f"zoo name, e.g. vpd://nyu_depth (default without --config-file: {DEFAULT_MODEL})")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", nargs="+", help="image files, folders or glob patterns")
    src.add_argument("--video-input", default="", help="a video file: every frame is run and drawn")
    p.add_argument("--output", required=True, help="output PNG (one input), folder (several), or video file")
    p.add_argument("--label", action="append", default=[], choices=["coco", "ade20k", "lvis"],
                   help="ODISE: a dataset's classes as vocabulary (repeatable; merged with --vocab)")
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


def expand_inputs(patterns):
    """Files, folders (their images, sorted) and glob patterns -> image paths, in order."""
    paths = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(os.path.join(pattern, f) for f in os.listdir(pattern) if f.lower().endswith(_IMAGE_SUFFIXES))
        elif glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
        else:
            found = [pattern]  # a missing file is named when it is read
        if not found:
            raise SystemExit(f"--input {pattern}: no image matches")
        paths += found
    return paths


def check_inputs(paths, output):
    """Every input is an existing file and --output can be written, before anything is imported."""
    for path in paths:
        if not os.path.exists(path):
            raise SystemExit(f"--input: image '{path}' does not exist")
        if os.path.isdir(path):
            raise SystemExit(f"--input: '{path}' is a directory, not an image file")
    if len(paths) > 1 and os.path.isfile(output):
        raise SystemExit(f"--output {output} is a file; several inputs need a folder")
    parent = os.path.dirname(os.path.abspath(output)) if len(paths) <= 1 else os.path.abspath(output)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise SystemExit(f"--output {output}: {parent} is not writable")


def model_config(args):
    """(config file, opts) from --config-file / --model / --opts (a zoo name brings its config)."""
    from odise_ext.zoo import get_entry, is_zoo_uri

    opts = list(args.opts)
    weights = next((opts[i + 1] for i in range(0, len(opts) - 1, 2) if opts[i] == "MODEL.WEIGHTS"), "")
    model = args.model or ("" if args.config_file or weights else DEFAULT_MODEL)
    if model:
        if not is_zoo_uri(model):
            raise SystemExit(f"--model {model}: not a zoo name (python -m odise_ext.zoo list); "
                             "for a local file use --config-file and --opts MODEL.WEIGHTS")
        opts = ["MODEL.WEIGHTS", model] + opts
    config_file = args.config_file
    if not config_file:
        uri = model or weights
        if not is_zoo_uri(uri):
            raise SystemExit("--config-file is needed unless the model is a zoo name (--model)")
        try:
            config_file = get_entry(uri).config
        except KeyError as e:
            raise SystemExit(str(e).strip("'\""))
        config_file = config_file if os.path.isabs(config_file) else os.path.join(ROOT, config_file)
    return config_file, opts


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
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # read_image below names the problem
        return None


def main(argv=None):
    args = get_parser().parse_args(argv)
    inputs = [] if args.video_input else expand_inputs(args.input)
    if args.video_input and not os.path.isfile(args.video_input):
        raise SystemExit(f"--video-input: '{args.video_input}' does not exist")
    check_inputs(inputs, args.output)
    sys.path.insert(0, ROOT)
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    import odise_ext  # noqa: F401  (registers models and their demo entries)
    from odise_ext.config.early_checks import checked_cfg
    from odise_ext.data.image_io import read_image
    from odise_ext.engine.demo import demo_class
    from odise_ext.engine.predictor import check_image_pixels
    from odise_ext.odise.vocabulary_presets import merge_vocabulary
    from odise_ext.utils.atomic_io import atomic_save_image
    from odise_ext.utils.safe_load import UnsafeFileError
    from odise_ext.zoo import ZooError, is_zoo_uri, resolve

    if args.label:
        try:
            args.vocab, args.things = merge_vocabulary(args.label, args.vocab, args.things)
        except ValueError as e:
            raise SystemExit(str(e))
    config_file, opts = model_config(args)
    cfg = checked_cfg(config_file, opts)  # keys, values, device, weight files: before the build
    arch = cfg.MODEL.META_ARCHITECTURE
    try:
        task = demo_class(arch)(cfg, args)
    except KeyError as e:
        raise SystemExit(e.args[0]) from None
    task.check_args()  # before the (slow) model build
    for flag in TASK_FLAGS:
        if getattr(args, flag) and flag not in task.flags:
            raise SystemExit(f"--{flag} does not apply to {arch}")

    def read(path):
        try:  # 16-bit, grayscale, palette, alpha: converted; unreadable: refused (image_io)
            size = _header_size(path)
            if size is not None:
                check_image_pixels(*size, cfg.DATA.MAX_INPUT_PIXELS, name=path)
            return read_image(path, format="BGR")
        except (OSError, ValueError) as e:  # the messages name the file
            raise SystemExit(f"cannot use {e}" if str(e).startswith("image '") else f"cannot read '{path}': {e}")

    for path in inputs:  # every image decodes, before the (slow) model build
        read(path)
    if is_zoo_uri(cfg.MODEL.WEIGHTS):
        try:  # download / verify / convert now, before the model is built (the checkpointer reuses it)
            print(f"{cfg.MODEL.WEIGHTS}: {resolve(cfg.MODEL.WEIGHTS)}")
        except (ZooError, UnsafeFileError) as e:
            raise SystemExit(str(e))
    predictor = task.build_predictor()
    metadata = task.metadata(predictor.model)
    if args.video_input:
        return run_video(args.video_input, args.output, predictor, task, metadata)
    many = len(inputs) > 1
    if many:
        os.makedirs(args.output, exist_ok=True)
    dsts = output_paths(inputs, args.output) if many else [args.output]
    for path, dst in tqdm(list(zip(inputs, dsts)), disable=not many):
        bgr = read(path)
        out = predictor(bgr, **task.inputs(bgr))
        drawn, summary = task.draw(np.ascontiguousarray(bgr[:, :, ::-1]), out, metadata)
        atomic_save_image(Image.fromarray(drawn), dst)  # never a half-written drawing
        print(f"{path}: {summary} -> {dst}")


def run_video(src, dst, predictor, task, metadata):
    """Every frame of ``src`` (decoded by OpenCV) run and drawn; the drawings written to ``dst``
    (same size and frame rate; codec from the extension: MJPG for .avi, else mp4v)."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise SystemExit(f"--video-input {src}: OpenCV cannot open it as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    ext = os.path.splitext(dst)[1].lower() or ".mp4"
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v"))
    # written under a temporary name and renamed when complete: never a half-written video at dst
    tmp = os.path.join(os.path.dirname(os.path.abspath(dst)), f".{os.path.basename(dst)}.partial{ext}")
    writer, frames = None, 0
    try:
        with tqdm(total=total, unit="frame", desc=os.path.basename(src)) as bar:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                out = predictor(bgr, **task.inputs(bgr))
                drawn, _summary = task.draw(np.ascontiguousarray(bgr[:, :, ::-1]), out, metadata)
                if writer is None:
                    writer = cv2.VideoWriter(tmp, fourcc, fps, (drawn.shape[1], drawn.shape[0]))
                    if not writer.isOpened():
                        raise SystemExit(f"--output {dst}: OpenCV cannot write a {ext} video")
                writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
                frames += 1
                bar.update(1)
        if writer is not None:
            writer.release()
            writer = None
            if frames:
                os.replace(tmp, dst)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if os.path.exists(tmp):
            os.remove(tmp)
    if not frames:
        raise SystemExit(f"--video-input {src}: no frame could be decoded")
    print(f"{src}: {frames} frames -> {dst}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
