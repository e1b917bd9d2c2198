"""VPD / Meta-Prompts meta-architectures, mappers, pose geometry and the predictor on tiny
configs: losses in training, output shapes/sizes in inference (non-square inputs, sliding windows,
flip test against a manual average), mapper alignment, crop geometry round trips."""
import copy

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, Keypoints
from PIL import Image
from pycocotools import mask as mask_util

import odise_ext.data  # noqa: F401  (shapes datasets)
import odise_ext.dense.meta_arch.depth  # noqa: F401
import odise_ext.dense.meta_arch.pose  # noqa: F401
import odise_ext.dense.meta_arch.refer  # noqa: F401
import odise_ext.dense.meta_arch.semseg  # noqa: F401
from odise_ext.config import setup_cfg
from odise_ext.dense.mappers.depth import DepthMapper
from odise_ext.dense.mappers.refer import ReferMapper, annotation_mask
from odise_ext.dense.heads import decode_heatmaps
from odise_ext.dense.person_crops import (
    crop_geometry,
    crop_images,
    crop_to_image,
    gaussian_heatmaps,
    image_to_crop,
)
from odise_ext.dense.predictor import DensePredictor
from odise_ext.dense.sliding_window import sliding_windows


def _model(name, *opts):
    cfg = setup_cfg(f"configs/testing/{name}.yaml", list(opts), freeze=True)
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def _image(h, w, seed=0):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ---- semantic segmentation --------------------------------------------------------------------
def test_vpd_semseg_losses_and_sliding_window_inference():
    cfg, model = _model("vpd_semseg_tiny", "TEST.DENSE.CROP_SIZE", [64, 64], "TEST.DENSE.STRIDE", [48, 48])
    model.train()
    batch = [
        {"image": _image(64, 96), "sem_seg": torch.randint(0, 9, (64, 96))},
        {"image": _image(48, 64, 1), "sem_seg": torch.full((48, 64), 255)},
    ]
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    model.eval()
    with torch.no_grad():
        out = model([{"image": _image(64, 160), "height": 100, "width": 250}])
    assert out[0]["sem_seg"].shape == (9, 100, 250)
    # windows: 64 x 160 with 64 / 48 -> 3 windows, batched; the result is their average
    image = (_image(64, 160).float() - model.pixel_mean) / model.pixel_std
    with torch.no_grad():
        slid = model.dense_inference([image], model._logits)[0]
        boxes = sliding_windows(64, 160, (64, 64), (48, 48))
        total, count = torch.zeros(9, 64, 160), torch.zeros(1, 64, 160)
        for y1, y2, x1, x2 in boxes:
            total[:, y1:y2, x1:x2] += model._logits(image[None, :, y1:y2, x1:x2])[0]
            count[:, y1:y2, x1:x2] += 1
        model.test_crop_size = []
        whole = model.dense_inference([image], model._logits)[0]
    assert len(boxes) == 3 and torch.allclose(slid, total / count, atol=1e-4)
    assert not torch.allclose(slid, whole, atol=1e-3)


def test_metaprompts_semseg_losses():
    cfg, model = _model("vpd_metaprompts_semseg_tiny")
    model.train()
    losses = model([{"image": _image(64, 64), "sem_seg": torch.randint(0, 9, (64, 64))}] * 2)
    assert set(losses) == {"loss_sem_seg", "loss_lovasz", "loss_sem_seg_aux"}
    assert model.backbone.output_shape()["res2"].channels == cfg.MODEL.META_PROMPTS.NUM_PROMPTS
    assert model.backbone.feature_extractor.loops == 2


# ---- depth --------------------------------------------------------------------------------------
def test_depth_inference_size_range_and_flip_test_average():
    cfg, model = _model("vpd_depth_tiny")
    model.train()
    depth = torch.rand(64, 128) * 40
    depth[:8] = 0  # no measurement
    losses = model([{"image": _image(64, 128), "depth": depth, "scene": "grass"}])
    assert set(losses) == {"loss_depth"} and torch.isfinite(losses["loss_depth"])
    model.eval()
    image = _image(64, 128)
    inp = {"height": 96, "width": 192, "scene": "grass"}
    assert model.flip_test  # the tiny config tests with flips, as VPD
    with torch.no_grad():
        flipped = model([{"image": image, **inp}])[0]["depth"]
        model.flip_test = False
        plain = model([{"image": image, **inp}])[0]["depth"]
        mirrored = model([{"image": image.flip(-1), **inp}])[0]["depth"]
    assert plain.shape == (96, 192) and 0 < plain.min() and plain.max() < 50
    # the flip test is the mean of the prediction and the mirrored prediction of the mirror
    assert torch.allclose(flipped, 0.5 * (plain + mirrored.flip(-1)), atol=1e-4)


def test_depth_mapper_units_invalid_range_and_alignment(tmp_path):
    h, w = 32, 48
    depth_mm = (np.arange(h * w).reshape(h, w) * 20 + 500).astype(np.uint16)
    depth_mm[0, 0] = 0
    Image.fromarray(depth_mm).save(tmp_path / "d.png")
    # red channel encodes the column: after a random flip it must still match the depth map
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.arange(w)[None] * 5
    Image.fromarray(rgb).save(tmp_path / "i.png")
    d = {"file_name": str(tmp_path / "i.png"), "depth_file_name": str(tmp_path / "d.png"), "depth_scale": 1000.0}
    import detectron2.data.transforms as T

    test = DepthMapper(is_train=False, augmentations=[], image_format="RGB", max_depth=30.0, use_kb_crop=False)(d)
    expected = depth_mm / 1000.0
    expected[expected >= 30.0] = 0
    assert torch.allclose(test["depth"], torch.tensor(expected, dtype=torch.float32))
    assert (test["height"], test["width"]) == (h, w)
    train_mapper = DepthMapper(
        is_train=True, augmentations=[T.RandomFlip(prob=1.0)], image_format="RGB", max_depth=30.0, use_kb_crop=False
    )
    out = train_mapper(d)
    col_of_pixel = out["image"][0].numpy() // 5
    assert np.allclose(out["depth"].numpy()[1:], expected[1:][np.arange(h - 1)[:, None], col_of_pixel[1:]])


# ---- referring segmentation ----------------------------------------------------------------------
def test_refer_mapper_mask_from_rle_and_polygons(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 3:12] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    poly = [[20.0, 2.0, 28.0, 2.0, 28.0, 8.0, 20.0, 8.0]]
    got = annotation_mask([{"segmentation": rle}, {"segmentation": poly}], 20, 30)
    assert got[5:10, 3:12].all() and got[3:8, 21:28].all() and got.sum() == mask.sum() + got[:, 20:].sum()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "i.png")
    d = {"file_name": str(tmp_path / "i.png"), "height": 20, "width": 30, "sentences": ["a", "b"],
         "annotations": [{"segmentation": rle}]}
    out = ReferMapper(is_train=False, augmentations=[], image_format="RGB")(d)
    assert out["sentence"] == "a" and torch.equal(out["ref_mask"], torch.as_tensor(mask))
    # resized input: the GT stays at the original size, or (LAVT/VPD protocol) follows the image by
    # nearest neighbour: 20x30 -> 40x60 doubles every pixel, and the prediction is asked at 40x60
    resize = [T.Resize((40, 60))]
    out = ReferMapper(is_train=False, augmentations=resize, image_format="RGB")(copy.deepcopy(d))
    assert torch.equal(out["ref_mask"], torch.as_tensor(mask)) and (out["height"], out["width"]) == (20, 30)
    out = ReferMapper(is_train=False, augmentations=resize, image_format="RGB", eval_at_input_size=True)(d)
    assert torch.equal(out["ref_mask"], torch.as_tensor(np.kron(mask, np.ones((2, 2), np.uint8))))
    assert (out["height"], out["width"]) == (40, 60) and out["image"].shape[-2:] == (40, 60)


def test_refer_model_uses_the_sentence():
    cfg, model = _model("vpd_refer_tiny")
    model.train()
    losses = model([{"image": _image(64, 64), "sentence": "the red circle", "ref_mask": torch.zeros(64, 64, dtype=torch.uint8)}])
    assert set(losses) == {"loss_refer"}
    model.eval()
    with torch.no_grad():
        a = model([{"image": _image(64, 128), "sentence": "the red circle", "height": 50, "width": 100}])[0]["ref_mask"]
        b = model([{"image": _image(64, 128), "sentence": "yellow star on the left", "height": 50, "width": 100}])[0]["ref_mask"]
    assert a.shape == (50, 100) and 0 <= a.min() and a.max() <= 1
    assert not torch.allclose(a, b)


# ---- pose -----------------------------------------------------------------------------------------
def test_crop_geometry_round_trip_and_sampling():
    boxes = torch.tensor([[10.0, 20.0, 40.0, 80.0], [50.0, 5.0, 90.0, 25.0]])
    crop = (64, 48)
    geom = crop_geometry(boxes, crop, 1.25, angle=torch.tensor([0.0, 0.3]))
    # aspect corrected: box 1 is 30 x 60 -> 45 x 60 (3:4) -> x1.25; one crop pixel = 75/48 px
    assert geom.scale[0].item() == pytest.approx(60 * 0.75 * 1.25 / 48)
    pts = torch.rand(2, 7, 2) * 60
    assert torch.allclose(crop_to_image(image_to_crop(pts, geom, crop), geom, crop), pts, atol=1e-4)
    # a single bright pixel lands where image_to_crop says
    image = torch.zeros(1, 1, 100, 100)
    image[0, 0, 50, 25] = 1.0  # pixel centre (25.5, 50.5)
    crops = crop_images(image, torch.tensor([0]), crop_geometry(boxes[:1], crop, 1.0), crop)
    where = image_to_crop(torch.tensor([[[25.5, 50.5]]]), crop_geometry(boxes[:1], crop, 1.0), crop)[0, 0]
    flat = crops[0, 0].argmax()
    assert abs(flat % crop[1] + 0.5 - where[0]) <= 1 and abs(flat // crop[1] + 0.5 - where[1]) <= 1


def test_heatmap_targets_decode_back_to_keypoints():
    boxes = torch.tensor([[12.0, 30.0, 52.0, 70.0]])
    crop, stride = (64, 64), 4
    geom = crop_geometry(boxes, crop, 1.25)
    kps = torch.tensor([[[20.3, 41.7], [33.0, 33.0], [47.9, 66.2]]])
    heat_pts = image_to_crop(kps, geom, crop) / stride - 0.5
    targets, weights = gaussian_heatmaps(heat_pts, torch.ones(1, 3, dtype=torch.bool), (16, 16), 1.5)
    assert weights.tolist() == [[1.0, 1.0, 1.0]] and targets.max() <= 1
    coords, _ = decode_heatmaps(targets)
    back = crop_to_image((coords + 0.5) * stride, geom, crop)
    # arg-max + quarter-pixel refinement: within half a heatmap pixel in image units
    assert (back - kps).abs().max() <= 0.5 * stride * geom.scale[0] + 1e-4


def test_pose_model_losses_and_keypoints_for_given_boxes():
    cfg, model = _model("vpd_pose_tiny")
    inst = Instances((96, 128))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 60.0]]))
    inst.gt_keypoints = Keypoints(torch.tensor([[[20.0, 15.0, 2], [40, 25, 2], [35, 55, 2], [15, 50, 0], [12, 25, 2]]]))
    model.train()
    assert set(model([{"image": _image(96, 128), "instances": inst}])) == {"loss_keypoint"}
    model.eval()
    with torch.no_grad():
        out = model([{"image": _image(96, 128), "boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0], [60, 20, 100, 90]]),
                      "height": 192, "width": 256}])[0]["instances"]
    assert out.pred_keypoints.shape == (2, 5, 3) and out.image_size == (192, 256)
    assert torch.allclose(out.pred_boxes.tensor[0], torch.tensor([20.0, 20.0, 100.0, 120.0]))


# ---- predictor --------------------------------------------------------------------------------------
def test_predictor_for_each_task():
    bgr = np.random.RandomState(0).randint(0, 256, (100, 150, 3)).astype(np.uint8)
    cfg = setup_cfg("configs/testing/vpd_semseg_tiny.yaml", [])
    assert DensePredictor(cfg)(bgr)["sem_seg"].shape == (9, 100, 150)
    cfg = setup_cfg("configs/testing/vpd_depth_tiny.yaml", [])
    assert DensePredictor(cfg)(bgr, scene="grass")["depth"].shape == (100, 150)
    cfg = setup_cfg("configs/testing/vpd_refer_tiny.yaml", [])
    assert DensePredictor(cfg)(bgr, sentence="the blue square")["ref_mask"].shape == (100, 150)
    cfg = setup_cfg("configs/testing/vpd_pose_tiny.yaml", [])
    inst = DensePredictor(cfg)(bgr, boxes=[[10, 20, 60, 90]])["instances"]
    assert torch.allclose(inst.pred_boxes.tensor, torch.tensor([[10.0, 20.0, 60.0, 90.0]]), atol=1e-3)
    assert inst.pred_keypoints.shape == (1, 5, 3)
