#!/usr/bin/env python
"""Draw Panoptic Narrative Grounding predictions: each phrase's mask in its own colour, with the
narrative underneath and every grounded phrase written in the colour of its mask. Each output
panel shows the ground truth (left) and the prediction (right).

    python tools/visualize_png.py --config-file configs/quickstart/png_shapes.yaml \\
        --weights output/png_quickstart/model_final.pth --dataset png_shapes_val \\
        --num 8 --output output/png_quickstart/vis
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# heavy imports follow the parsing of the command line (--help answers at once)


def _resize_masks(masks, size, mode: str = "bilinear"):
    """[P, h, w] tensor -> [P, H, W] float numpy ("nearest-exact" keeps GT masks binary)."""
    import torch.nn.functional as F

    masks = masks.float()
    if tuple(masks.shape[-2:]) != tuple(size):
        align = {"align_corners": False} if mode == "bilinear" else {}
        masks = F.interpolate(masks[None], size=size, mode=mode, **align)[0]
    return masks.clamp(0, 1).cpu().numpy()


def _upscale(rgb, min_width: int):
    """uint8 [H, W, 3] enlarged (bilinear, aspect kept) to at least ``min_width`` columns."""
    import numpy as np
    from PIL import Image

    h, w = rgb.shape[:2]
    if w >= min_width:
        return rgb
    size = (min_width, round(h * min_width / w))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default="", help="MODEL.WEIGHTS (default: the config's)")
    p.add_argument("--dataset", required=True, help="a registered PNG dataset, e.g. png_shapes_val")
    p.add_argument("--num", type=int, default=8, help="number of narratives")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--alpha", type=float, default=0.55, help="mask opacity where a mask is 1")
    p.add_argument("--min-width", type=int, default=512, help="upscale smaller images to this width (readable captions)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)
    import torch
    from odise_ext.engine.safe_checkpoint import SafeCheckpointer
    from detectron2.data import DatasetCatalog
    from odise_ext.data.image_io import read_image
    from detectron2.modeling import build_model
    from PIL import Image
    from tqdm import tqdm

    import odise_ext  # noqa: F401  (registers PNGDiffusion, its mapper and the PNG datasets)
    from odise_ext.config.early_checks import checked_cfg
    from odise_ext.data.build import build_dataset_mapper
    from odise_ext.png.visualization import draw_png
    from odise_ext.utils.atomic_io import atomic_save_image
    from odise_ext.utils.visualization import headed_panels

    opts = list(args.opts) + (["MODEL.WEIGHTS", args.weights] if args.weights else [])
    cfg = checked_cfg(args.config_file, opts)  # keys, device, weight files: before the build
    if args.dataset not in DatasetCatalog.list():
        raise SystemExit(f"--dataset {args.dataset} is not registered; e.g. png_shapes_val")
    model = build_model(cfg).eval()
    SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    mapper = build_dataset_mapper(cfg, is_train=False)
    os.makedirs(args.output, exist_ok=True)
    written = []
    for d in tqdm(DatasetCatalog.get(args.dataset)[: args.num], desc="drawing"):
        inputs = mapper(d)
        with torch.no_grad():
            pred = model([inputs])[0]["png_masks"]
        rgb = _upscale(read_image(d["file_name"], format="RGB"), args.min_width)
        spans = [tuple(ph["char_span"]) for ph in d["phrases"]]
        gt = _resize_masks(inputs["gt_masks"], rgb.shape[:2], mode="nearest-exact")
        panel = headed_panels([
            (draw_png(rgb, d["caption"], spans, gt, alpha=args.alpha), "ground truth"),
            (draw_png(rgb, d["caption"], spans, _resize_masks(pred, rgb.shape[:2]), alpha=args.alpha), "prediction"),
        ])
        dst = os.path.join(args.output, f"{d['image_id']}_{d['annotator_id']}_{d['narrative_index']}.png")
        atomic_save_image(Image.fromarray(panel), dst)
        written.append(dst)
    print(f"wrote {len(written)} panels (ground truth | prediction) to {args.output}")
    return written


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
