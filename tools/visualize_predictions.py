#!/usr/bin/env python
"""Draw ground truth and predicted panoptic segmentation of a registered dataset, side by side.

    python tools/visualize_predictions.py --config-file configs/quickstart/odise_shapes.yaml \\
        --weights output/demo/train/model_final.pth --dataset shapes_val_panoptic_with_sem_seg \\
        --num 8 --output output/demo/vis
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# heavy imports follow the parsing of the command line (--help answers at once)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default="", help="MODEL.WEIGHTS (default: the config's)")
    p.add_argument("--dataset", required=True, help="a registered *_panoptic_with_sem_seg dataset")
    p.add_argument("--num", type=int, default=8, help="number of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)
    import numpy as np
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from odise_ext.data.image_io import read_image, read_panoptic_rgb
    from odise_ext.engine.predictor import Predictor
    from panopticapi.utils import rgb2id
    from PIL import Image
    from tqdm import tqdm

    import odise_ext  # noqa: F401
    from odise_ext.config.early_checks import checked_cfg
    from odise_ext.odise.open_vocab.vocabulary import Vocabulary
    from odise_ext.utils.atomic_io import atomic_save_image
    from odise_ext.utils.visualization import (
        display_factor, draw_panoptic, enlarge_image, headed_panels, vocabulary_metadata,
    )

    opts = list(args.opts) + (["MODEL.WEIGHTS", args.weights] if args.weights else [])
    cfg = checked_cfg(args.config_file, opts)  # keys, device, weight files: before the build
    if args.dataset not in DatasetCatalog.list():
        raise SystemExit(f"--dataset {args.dataset} is not registered; e.g. shapes_val_panoptic_with_sem_seg")
    predictor = Predictor(cfg)  # reads the weights without executing code
    meta = MetadataCatalog.get(args.dataset)
    predictor.model.set_test_vocabulary(Vocabulary.from_metadata(meta))
    vis_meta = vocabulary_metadata([c.split(",")[0] for c in meta.stuff_classes], meta.get("stuff_colors"))
    os.makedirs(args.output, exist_ok=True)
    written = []
    for d in tqdm(DatasetCatalog.get(args.dataset)[: args.num], desc="drawing"):
        rgb = read_image(d["file_name"], format="RGB")
        gt = rgb2id(read_panoptic_rgb(d["pan_seg_file_name"]))
        gt_info = [{"id": s["id"], "category_id": s["category_id"], "isthing": bool(s["isthing"])} for s in d["segments_info"]]
        seg, info = predictor(np.ascontiguousarray(rgb[:, :, ::-1]))["panoptic_seg"]
        panel = headed_panels([
            (enlarge_image(rgb, display_factor(*rgb.shape[:2])), "image"),
            (draw_panoptic(rgb, gt, gt_info, vis_meta), "ground truth"),
            (draw_panoptic(rgb, seg, info, vis_meta), "prediction"),
        ])
        dst = os.path.join(args.output, f"{d['image_id']}.png")
        atomic_save_image(Image.fromarray(panel), dst)
        written.append(dst)
    print(f"wrote {len(written)} panels (image | ground truth | prediction) to {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
