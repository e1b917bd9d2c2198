"""Real datasets of the VPD / Meta-Prompts tasks (registered lazily and idempotently).

Root: ``$DETECTRON2_DATASETS`` (default ``datasets``), read when registering. Nothing is read
before a dataset is requested; a missing file then raises with the script that creates it.

===============================================  ==========  =====================================
name                                             evaluator   source
===============================================  ==========  =====================================
ade20k_sem_seg_{train,val}                       sem_seg     register_ade20k.py (ade/ADEChallengeData2016
                                                             + datasets/prepare_ade20k_sem_seg.py)
vpd_cityscapes_fine_sem_seg_{train,val}          sem_seg     cityscapes/ (leftImg8bit, gtFine
                                                             *_labelTrainIds.png from
                                                             datasets/prepare_cityscapes.py)
nyu_depth_v2_{train,test}                        depth       nyu/{split}.json (datasets/prepare_nyu.py)
kitti_depth_eigen_{train,test}                   depth       kitti/eigen_{split}.json (prepare_kitti.py)
refcoco_unc_{train,val,testA,testB}              refer       refcoco/*.json (prepare_refcoco.py)
refcoco+_unc_{train,val,testA,testB}             refer       idem
refcocog_umd_{train,val,test}                    refer       idem
refcocog_google_{train,val}                      refer       idem
keypoints_coco_2017_{train,val}                  coco        detectron2 builtin
===============================================  ==========  =====================================

Referring *evaluation* splits have one dict per sentence (every expression is a test sample, as
LAVT / VPD evaluate); training splits one dict per object with all its sentences.
"""
import os
import re
from typing import Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .catalog_utils import load_json
from .json_records import refuse_duplicates, require_keys

__all__ = ["register_all_vpd", "VPD_DATASETS", "CITYSCAPES_TRAIN_CLASSES", "nyu_scene"]

# Cityscapes' 19 evaluation classes (trainId order) and their colours.
CITYSCAPES_TRAIN_CLASSES = [
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)), ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)), ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)),
]

_DEPTH = {
    # name -> (json relative to root, depth PNG scale, max depth in m)
    "nyu_depth_v2_train": ("nyu/train.json", 1000.0, 10.0),
    "nyu_depth_v2_test": ("nyu/test.json", 1000.0, 10.0),
    "kitti_depth_eigen_train": ("kitti/eigen_train.json", 256.0, 80.0),
    "kitti_depth_eigen_test": ("kitti/eigen_test.json", 256.0, 80.0),
}
_REFER_SPLITS = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}
VPD_DATASETS = (
    tuple(f"vpd_cityscapes_fine_sem_seg_{s}" for s in ("train", "val"))
    + tuple(_DEPTH)
    + tuple(f"{d}_{by}_{s}" for (d, by), splits in _REFER_SPLITS.items() for s in splits)
)


def _load_cityscapes(image_dir: str, gt_dir: str) -> List[dict]:
    """Cityscapes semantic dicts (as detectron2's ``load_cityscapes_semantic``), checking every
    file: ``<city>/<stem>_leftImg8bit.png`` images, ``_gtFine_labelTrainIds.png`` labels and the
    ``_gtFine_polygons.json`` that holds the image size."""
    for path, what in ((image_dir, "leftImg8bit_trainvaltest.zip"), (gt_dir, "gtFine_trainvaltest.zip")):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path} does not exist; unzip Cityscapes' {what} into its root")
    dicts, no_label = [], []
    for city in sorted(os.listdir(image_dir)):
        for name in sorted(os.listdir(os.path.join(image_dir, city))):
            if not name.endswith("_leftImg8bit.png"):
                continue
            stem = os.path.join(gt_dir, city, name[: -len("_leftImg8bit.png")])
            if not os.path.isfile(stem + "_gtFine_polygons.json"):
                raise FileNotFoundError(f"{stem}_gtFine_polygons.json is missing (Cityscapes' gtFine_trainvaltest.zip)")
            polygons = load_json(stem + "_gtFine_polygons.json")
            label = stem + "_gtFine_labelTrainIds.png"
            if not os.path.isfile(label):
                no_label.append(label)
            dicts.append({
                "file_name": os.path.join(image_dir, city, name),
                "sem_seg_file_name": label,
                "height": polygons["imgHeight"],
                "width": polygons["imgWidth"],
            })
    if not dicts:
        raise FileNotFoundError(f"no <city>/*_leftImg8bit.png images under {image_dir}")
    if no_label:
        raise FileNotFoundError(
            f"{len(no_label)} train-id label files are missing (e.g. {no_label[0]}); "
            "create them with datasets/prepare_cityscapes.py"
        )
    return dicts


def nyu_scene(file_name: str) -> str:
    """NYUv2 scene class of a BTS-layout frame: its folder without the recording number
    (``.../kitchen_0028b/rgb_00045.jpg`` and ``.../kitchen/rgb_00045.jpg`` -> ``kitchen``)."""
    return re.sub(r"_\d+[a-z]?$", "", os.path.basename(os.path.dirname(file_name)))


def _load_depth(root: str, rel: str, scale: float, max_depth: float) -> List[dict]:
    nyu = rel.startswith("nyu")
    path = os.path.join(root, rel)
    script = "prepare_nyu.py" if nyu else "prepare_kitti.py"
    entries = load_json(path, f"{path} does not exist; create it with datasets/{script}")
    for i, e in enumerate(entries):
        require_keys(e, ("file_name", "depth_file_name"), file=path, what=f"entry #{i}")
    refuse_duplicates(entries, lambda e: e["file_name"], file=path, what="entry", key_name="file_name")
    return [
        {
            **e,
            "file_name": os.path.join(root, e["file_name"]),
            "depth_file_name": os.path.join(root, e["depth_file_name"]),
            "depth_scale": scale,
            "max_depth": max_depth,
            # VPD's NYUv2 depth model is prompted with the scene class of each frame.
            **({"scene": nyu_scene(e["file_name"])} if nyu else {}),
        }
        for e in entries
    ]


def _load_refer(root: str, dataset: str, split_by: str, split: str, image_root: str) -> List[dict]:
    path = os.path.join(root, "refcoco", f"{dataset}_{split_by}_{split}.json")
    refs = load_json(path, f"{path} does not exist; create it with datasets/prepare_refcoco.py")
    keys = ("file_name", "image_id", "height", "width", "ref_id", "ann_id", "category_id", "bbox", "segmentation",
            "sentences")
    for i, r in enumerate(refs):
        require_keys(r, keys, file=path, what=f"ref #{i}")
    refuse_duplicates(refs, lambda r: r["ref_id"], file=path, what="ref", key_name="ref_id")
    per_sentence = split != "train"
    dicts = []
    for r in refs:
        base = {
            "file_name": os.path.join(image_root, r["file_name"]),
            "image_id": r["image_id"],
            "height": r["height"],
            "width": r["width"],
            "ref_id": r["ref_id"],
            "ann_id": r["ann_id"],
            "category_id": r["category_id"],
            "annotations": [
                {"bbox": r["bbox"], "bbox_mode": BoxMode.XYWH_ABS, "category_id": r["category_id"],
                 "segmentation": r["segmentation"], "iscrowd": 0}
            ],
        }
        if per_sentence:
            dicts.extend({**base, "sentence": s, "sentences": [s]} for s in r["sentences"])
        else:
            dicts.append({**base, "sentences": list(r["sentences"])})
    return dicts


def _register(name: str, loader: Callable[[], List[dict]], **metadata) -> None:
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)


def register_all_vpd(root: str = None) -> None:
    """Register every name of :data:`VPD_DATASETS` (names already registered are skipped)."""
    root = root if root is not None else os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    todo = [n for n in VPD_DATASETS if n not in DatasetCatalog]
    names = [c for c, _ in CITYSCAPES_TRAIN_CLASSES]
    colors = [list(c) for _, c in CITYSCAPES_TRAIN_CLASSES]
    for split in ("train", "val"):
        name = f"vpd_cityscapes_fine_sem_seg_{split}"
        if name in todo:
            image_dir = os.path.join(root, "cityscapes/leftImg8bit", split)
            gt_dir = os.path.join(root, "cityscapes/gtFine", split)
            _register(
                name, (lambda i, g: lambda: _load_cityscapes(i, g))(image_dir, gt_dir),
                image_dir=image_dir, gt_dir=gt_dir, stuff_classes=names, stuff_colors=colors,
                ignore_label=255, evaluator_type="sem_seg",
            )
    for name, (rel, scale, max_depth) in _DEPTH.items():
        if name in todo:
            _register(
                name, (lambda r, s, m: lambda: _load_depth(root, r, s, m))(rel, scale, max_depth),
                json_file=os.path.join(root, rel), depth_scale=scale, max_depth=max_depth,
                evaluator_type="depth",
            )
    image_root = os.path.join(root, "coco/train2014")
    for (dataset, split_by), splits in _REFER_SPLITS.items():
        for split in splits:
            name = f"{dataset}_{split_by}_{split}"
            if name in todo:
                _register(
                    name,
                    (lambda d, b, s: lambda: _load_refer(root, d, b, s, image_root))(dataset, split_by, split),
                    image_root=image_root, evaluator_type="refer",
                    json_file=os.path.join(root, "refcoco", f"{dataset}_{split_by}_{split}.json"),
                )
