"""The VPD datasets' prepare scripts (Cityscapes, NYUv2, KITTI Eigen, RefCOCO family) on tiny fake
copies of the official layouts, and the loaders of ``register_vpd`` on their outputs: converted
values, written indexes, and missing inputs named in the error output."""
import importlib.util
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from odise_ext.data.datasets import register_vpd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "datasets", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


# ---- Cityscapes -----------------------------------------------------------------------------------
def _fake_cityscapes(root, split="val"):
    ids = np.array([[0, 7, 8, 11], [26, 33, 9, 24]], dtype=np.uint8)  # unlabeled, road, sidewalk, ...
    for city, stem in (("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")):
        _png(f"{root}/cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", np.zeros((2, 4, 3), np.uint8))
        gt = f"{root}/cityscapes/gtFine/{split}/{city}/{stem}_gtFine_"
        _png(gt + "labelIds.png", ids)
        _png(gt + "instanceIds.png", ids)
        with open(gt + "polygons.json", "w") as f:
            json.dump({"imgHeight": 2, "imgWidth": 4, "objects": []}, f)
    return ids


def test_prepare_cityscapes_writes_train_ids_and_loads(tmp_path, capsys):
    prep = _script("prepare_cityscapes")
    _fake_cityscapes(tmp_path)
    image_dir = f"{tmp_path}/cityscapes/leftImg8bit/val"
    gt_dir = f"{tmp_path}/cityscapes/gtFine/val"
    with pytest.raises(FileNotFoundError, match="prepare_cityscapes.py"):
        register_vpd._load_cityscapes(image_dir, gt_dir)  # before the conversion
    assert prep.main(["--root", str(tmp_path), "--splits", "val", "--workers", "1"]) == 0
    out = np.asarray(Image.open(f"{gt_dir}/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"))
    # by hand, from the official table: 0 -> 255, road 7 -> 0, sidewalk 8 -> 1, building 11 -> 2,
    # car 26 -> 13, bicycle 33 -> 18, parking 9 -> 255, person 24 -> 11
    assert out.tolist() == [[255, 0, 1, 2], [13, 18, 255, 11]]
    dicts = register_vpd._load_cityscapes(image_dir, gt_dir)
    assert len(dicts) == 2 and dicts[0]["height"] == 2 and dicts[0]["width"] == 4
    assert all(os.path.isfile(d["sem_seg_file_name"]) for d in dicts)


def test_prepare_cityscapes_names_missing_inputs(tmp_path, capsys):
    prep = _script("prepare_cityscapes")
    assert prep.main(["--root", str(tmp_path), "--splits", "train", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "leftImg8bit/train" in err and "gtFine_trainvaltest.zip" in err
    _fake_cityscapes(tmp_path, "train")
    os.remove(f"{tmp_path}/cityscapes/gtFine/train/bonn/bonn_000001_000019_gtFine_labelIds.png")
    assert prep.main(["--root", str(tmp_path), "--splits", "train", "--workers", "1"]) == 1
    assert "bonn_000001_000019_gtFine_labelIds.png" in capsys.readouterr().err
    assert not os.path.exists(f"{tmp_path}/cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    _png(f"{tmp_path}/cityscapes/gtFine/train/bonn/bonn_000001_000019_gtFine_labelIds.png",
         np.full((2, 4), 40, np.uint8))
    with pytest.raises(ValueError, match="not a Cityscapes id"):
        prep.main(["--root", str(tmp_path), "--splits", "train", "--workers", "1"])


# ---- NYUv2 / KITTI --------------------------------------------------------------------------------
def test_prepare_nyu_index_and_loader(tmp_path, capsys):
    prep = _script("prepare_nyu")
    nyu = tmp_path / "nyu"
    assert prep.main(["--root", str(tmp_path), "--splits", "test"]) == 1
    assert "nyudepthv2_test_files_with_gt.txt" in capsys.readouterr().out
    os.makedirs(nyu / "splits")
    (nyu / "splits" / "nyudepthv2_test_files_with_gt.txt").write_text(
        "bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 518.8579\n\n"
        "/kitchen/rgb_00046.jpg /kitchen/sync_depth_00046.png 518.8579\n"
    )
    base = nyu / "official_splits" / "test"
    _png(str(base / "bathroom" / "rgb_00045.jpg"), np.zeros((6, 8, 3), np.uint8))
    _png(str(base / "bathroom" / "sync_depth_00045.png"), np.full((6, 8), 2500, np.uint16))
    assert prep.main(["--root", str(tmp_path), "--splits", "test"]) == 1
    out = capsys.readouterr().out
    assert "kitchen/rgb_00046.jpg" in out and not (nyu / "test.json").exists()
    _png(str(base / "kitchen" / "rgb_00046.jpg"), np.zeros((6, 8, 3), np.uint8))
    _png(str(base / "kitchen" / "sync_depth_00046.png"), np.zeros((6, 8), np.uint16))
    assert prep.main(["--root", str(tmp_path), "--splits", "test"]) == 0
    dicts = register_vpd._load_depth(str(tmp_path), "nyu/test.json", 1000.0, 10.0)
    assert [d["height"] for d in dicts] == [6, 6] and [d["width"] for d in dicts] == [8, 8]
    assert dicts[0]["depth_file_name"] == str(base / "bathroom" / "sync_depth_00045.png")
    assert dicts[0]["depth_scale"] == 1000.0 and dicts[0]["max_depth"] == 10.0
    assert os.path.isfile(dicts[1]["file_name"])


def test_prepare_kitti_skips_frames_without_ground_truth(tmp_path, capsys):
    prep = _script("prepare_kitti")
    kitti = tmp_path / "kitti"
    os.makedirs(kitti / "splits")
    drive = "2011_09_26/2011_09_26_drive_0002_sync"
    (kitti / "splits" / "eigen_test_files_with_gt.txt").write_text(
        f"{drive}/image_02/data/0000000069.png 2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/"
        "0000000069.png 721.5377\n"
        f"{drive}/image_02/data/0000000070.png None 721.5377\n"
    )
    _png(str(kitti / "raw" / drive / "image_02/data/0000000069.png"), np.zeros((4, 12, 3), np.uint8))
    gt = kitti / "gt" / "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    assert prep.main(["--root", str(tmp_path), "--splits", "test"]) == 1
    assert "0000000069.png" in capsys.readouterr().out
    _png(str(gt), np.full((4, 12), 256 * 20, np.uint16))
    assert prep.main(["--root", str(tmp_path), "--splits", "test"]) == 0
    assert "1 without ground truth skipped" in capsys.readouterr().out
    dicts = register_vpd._load_depth(str(tmp_path), "kitti/eigen_test.json", 256.0, 80.0)
    assert len(dicts) == 1 and dicts[0]["depth_file_name"] == str(gt) and dicts[0]["width"] == 12


# ---- RefCOCO family ------------------------------------------------------------------------------
def _refs(split_by):
    return [
        {"ref_id": 1, "ann_id": 10, "image_id": 100, "split": "train", "sentences": [{"sent": "left dog"}, {"raw": "Dog!"}]},
        {"ref_id": 2, "ann_id": 11, "image_id": 100, "split": "val", "sentences": [{"sent": "cat"}, {"sent": "the cat"}]},
    ]


def test_prepare_refcoco_splits_and_per_sentence_test_loading(tmp_path, capsys):
    prep = _script("prepare_refcoco")
    assert prep.main(["--root", str(tmp_path), "--datasets", "refcoco"]) == 1
    assert "refs(unc).p" in capsys.readouterr().out
    d = tmp_path / "refcoco" / "refcoco"
    os.makedirs(d)
    poly = [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]
    instances = {
        "images": [{"id": 100, "file_name": "COCO_train2014_000000000100.jpg", "height": 8, "width": 8}],
        "annotations": [{"id": 10, "category_id": 18, "bbox": [1, 1, 4, 4], "segmentation": poly},
                        {"id": 11, "category_id": 17, "bbox": [0, 0, 2, 2], "segmentation": poly}],
    }
    (d / "instances.json").write_text(json.dumps(instances))
    with open(d / "refs(unc).p", "wb") as f:
        pickle.dump(_refs("unc"), f)
    assert prep.main(["--root", str(tmp_path), "--datasets", "refcoco"]) == 0
    image_root = str(tmp_path / "coco" / "train2014")
    train = register_vpd._load_refer(str(tmp_path), "refcoco", "unc", "train", image_root)
    assert len(train) == 1 and train[0]["sentences"] == ["left dog", "Dog!"]
    assert train[0]["annotations"][0]["segmentation"] == poly
    val = register_vpd._load_refer(str(tmp_path), "refcoco", "unc", "val", image_root)
    assert [v["sentence"] for v in val] == ["cat", "the cat"]  # one sample per expression
    assert val[0]["file_name"] == os.path.join(image_root, "COCO_train2014_000000000100.jpg")
    # --check-images names the missing image
    assert prep.main(["--root", str(tmp_path), "--datasets", "refcoco", "--check-images"]) == 1
    assert "COCO_train2014_000000000100.jpg" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="prepare_refcoco.py"):
        register_vpd._load_refer(str(tmp_path), "refcoco+", "unc", "val", image_root)
