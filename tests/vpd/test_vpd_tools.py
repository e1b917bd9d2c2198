"""The command-line tools with the tiny VPD / Meta-Prompts configs.

- ``tools/demo.py`` (in-process, through ``main``) draws every task's output at the input's size:
  semantic segmentation map, colour-mapped depth, referring mask for ``--sentence``, keypoints for
  ``--boxes`` or the whole image; bad task inputs are clear errors.
- ``tools/train_net.py`` (subprocess) trains a VPD config a few iterations, evaluates through the
  evaluator table (depth metrics + colour-mapped visualisations), and ``--eval-only`` from the
  saved weights reproduces the same numbers.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from PIL import Image

import odise_ext  # noqa: F401  (datasets, mappers, models)
from odise_ext.config import setup_cfg
from odise_ext.engine.demo import demo_class

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import demo  # noqa: E402  (tools/demo.py)


@pytest.fixture(scope="module")
def image_path(shapes_root, tmp_path_factory):
    """A non-square (96 x 128) crop of a shapes validation image."""
    src = DatasetCatalog.get("shapes_val_sem_seg")[0]["file_name"]
    rgb = np.asarray(Image.open(src).convert("RGB"))[:96, :128]
    path = tmp_path_factory.mktemp("demo") / "input.png"
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return str(path)


def _run_demo(config, image_path, out, *extra):
    """The drawing of the 96 x 128 input, enlarged x4 for display (depth: the map, its colour
    bar cut off and checked to be below it)."""
    demo.main(["--config-file", f"configs/testing/{config}.yaml", "--input", image_path, "--output", str(out), *extra])
    assert out.exists()
    drawn = np.asarray(Image.open(out).convert("RGB"))
    if config.startswith("vpd_depth"):
        assert drawn.shape[0] > 4 * 96 and drawn.shape[1:] == (4 * 128, 3)
        drawn = drawn[: 4 * 96]
    assert drawn.shape == (4 * 96, 4 * 128, 3)  # 512 px on the long side
    return drawn


def _input(image_path):
    """The input as the drawings show it underneath (enlarged x4, bilinear)."""
    from odise_ext.utils.visualization import enlarge_image

    return enlarge_image(np.asarray(Image.open(image_path).convert("RGB")), 4)


@pytest.mark.parametrize("config", ["vpd_semseg_tiny", "vpd_metaprompts_semseg_tiny"])
def test_demo_draws_semantic_segmentation(config, image_path, tmp_path):
    drawn = _run_demo(config, image_path, tmp_path / "seg.png")
    # the label overlay changes the picture
    assert np.abs(drawn.astype(int) - _input(image_path)).mean() > 5


def test_demo_draws_colour_mapped_depth(image_path, tmp_path):
    # VPD's initialisation (weights ~1e-3) gives a constant depth at random init; randomise the
    # head more strongly and load it as MODEL.WEIGHTS (also exercises weight loading in the demo).
    cfg = setup_cfg("configs/testing/vpd_depth_tiny.yaml", [])
    torch.manual_seed(0)
    model = build_model(cfg)
    for p in model.depth_head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    weights = tmp_path / "random.pth"
    torch.save({"model": model.state_dict()}, weights)
    drawn = _run_demo("vpd_depth_tiny", image_path, tmp_path / "depth.png", "--scene", "grass",
                      "--opts", "MODEL.WEIGHTS", str(weights))
    colours = np.unique(drawn.reshape(-1, 3), axis=0)
    assert len(colours) > 10, "the depth drawing is (nearly) constant"
    # colour-mapped: not a grey-scale image
    assert (drawn.max(axis=2).astype(int) - drawn.min(axis=2)).max() > 50


def test_demo_draws_referring_mask_for_sentence(image_path, tmp_path):
    drawn = _run_demo("vpd_refer_tiny", image_path, tmp_path / "ref.png", "--sentence", "the red circle")
    assert np.abs(drawn.astype(int) - _input(image_path)).sum() > 0  # sentence (and mask) drawn
    with pytest.raises(SystemExit, match="--sentence"):
        demo.main(["--config-file", "configs/testing/vpd_refer_tiny.yaml", "--input", image_path,
                   "--output", str(tmp_path / "x.png")])


def test_demo_draws_keypoints_for_boxes_or_whole_image(image_path, tmp_path):
    given = _run_demo("vpd_pose_tiny", image_path, tmp_path / "pose.png", "--boxes", "10,10,60,70;50,20,120,90",
                      "--keypoint-threshold", "0")
    whole = _run_demo("vpd_pose_tiny", image_path, tmp_path / "pose_whole.png", "--keypoint-threshold", "0")
    image = _input(image_path).astype(int)
    assert np.abs(given - image).sum() > 0 and np.abs(whole - image).sum() > 0
    assert np.abs(given.astype(int) - whole).sum() > 0  # the boxes decide what is drawn
    # the demo entry's --boxes: parsed in the input image's pixels, bad boxes exit naming the flag
    pose_demo = demo_class("DensePoseEstimator")
    bgr = np.zeros((200, 200, 3), np.uint8)
    for bad in ("1,2,3", "5,5,1,1", "a,b,c,d"):
        with pytest.raises(SystemExit, match="--boxes"):
            pose_demo(None, argparse.Namespace(boxes=bad)).inputs(bgr)
    assert pose_demo(None, argparse.Namespace(boxes="1,2,3,4; 5,6,7,8;")).inputs(bgr)["boxes"].shape == (2, 4)


def test_demo_rejects_flags_of_other_tasks(image_path, tmp_path):
    common = ["--config-file", "configs/testing/vpd_depth_tiny.yaml", "--input", image_path, "--output", str(tmp_path / "x.png"),
              "--scene", "grass"]
    for flag, value in (("--vocab", "cat;dog"), ("--sentence", "the cat"), ("--boxes", "1,2,3,4")):
        with pytest.raises(SystemExit, match=flag):
            demo.main([*common, flag, value])
    assert not (tmp_path / "x.png").exists()


def _train_net(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def _copypaste(log):
    """The last 'copypaste' header and values of a detectron2 log, as floats."""
    lines = re.findall(r"copypaste: (.*)", log)
    names, values = lines[-2].split(","), lines[-1].split(",")
    return dict(zip(names, (float(v) for v in values)))


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_train_net_trains_and_evaluates_vpd_depth(shapes_root, tmp_path):
    cfg = ["--config-file", "configs/testing/vpd_depth_tiny.yaml"]
    log = _train_net([*cfg, "OUTPUT_DIR", str(tmp_path / "train"), "SOLVER.MAX_ITER", "3"])
    trained = _copypaste(log)
    assert set(trained) >= {"d1", "abs_rel", "rmse", "log10", "rmse_log", "sq_rel"}
    vis = os.listdir(tmp_path / "train" / "inference" / "shapes_val_depth" / "depth_vis")
    assert len(vis) == 8 and all(v.endswith(".png") for v in vis)
    weights = tmp_path / "train" / "model_final.pth"
    _train_net([*cfg, "--eval-only", "OUTPUT_DIR", str(tmp_path / "eval"), "MODEL.WEIGHTS", str(weights)])
    with open(tmp_path / "eval" / "eval_results.json") as f:
        again = json.load(f)["depth"]
    for k, v in trained.items():
        assert again[k] == pytest.approx(v, abs=1e-4), k
