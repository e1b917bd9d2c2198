import math
import os

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from detectron2.utils import comm as detectron2_comm

from odise_ext.dense.evaluation.depth import DepthEvaluator, depth_eval_mask, depth_metrics
from odise_ext.dense.depth_vis import colorize_depth, save_depth_png


def _hand_metrics(pred, gt):
    """Metrics written out pixel by pixel with the math module."""
    n = len(pred)
    ratios = [max(p / g, g / p) for p, g in zip(pred, gt)]
    logs = [math.log(p) - math.log(g) for p, g in zip(pred, gt)]
    return {
        "d1": sum(r < 1.25 for r in ratios) / n,
        "d2": sum(r < 1.5625 for r in ratios) / n,
        "d3": sum(r < 1.953125 for r in ratios) / n,
        "abs_rel": sum(abs(p - g) / g for p, g in zip(pred, gt)) / n,
        "sq_rel": sum((p - g) ** 2 / g for p, g in zip(pred, gt)) / n,
        "rmse": math.sqrt(sum((p - g) ** 2 for p, g in zip(pred, gt)) / n),
        "rmse_log": math.sqrt(sum(d * d for d in logs) / n),
        "log10": sum(abs(math.log10(p) - math.log10(g)) for p, g in zip(pred, gt)) / n,
        "silog": math.sqrt(sum(d * d for d in logs) / n - 0.5 * (sum(logs) / n) ** 2),
    }


def test_depth_metrics_hand_values():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 1.0], [2.0, 8.0]])
    m = depth_metrics(pred, gt, np.ones((2, 2), bool))
    # ratios 1, 2, 1.5, 2
    assert m["d1"] == 0.25 and m["d2"] == 0.5 and m["d3"] == 0.5
    assert m["abs_rel"] == pytest.approx(0.5)
    assert m["sq_rel"] == pytest.approx(0.875)
    assert m["rmse"] == pytest.approx(math.sqrt(4.5))
    ln2, ln15 = math.log(2), math.log(1.5)
    assert m["rmse_log"] == pytest.approx(math.sqrt((2 * ln2**2 + ln15**2) / 4))
    assert m["log10"] == pytest.approx((2 * math.log10(2) + math.log10(1.5)) / 4)
    mean_d = (ln2 + ln15 - ln2) / 4
    assert m["silog"] == pytest.approx(math.sqrt((2 * ln2**2 + ln15**2) / 4 - 0.5 * mean_d**2))


def test_depth_metrics_only_valid_pixels_and_torch_input():
    rng = np.random.default_rng(1)
    pred = rng.uniform(0.5, 5, size=(4, 6))
    gt = rng.uniform(0.5, 5, size=(4, 6))
    valid = rng.random((4, 6)) < 0.5
    pred_bad = pred.copy()
    pred_bad[~valid] = -1.0  # must be ignored
    got = depth_metrics(torch.tensor(pred_bad), torch.tensor(gt), torch.tensor(valid))
    expected = _hand_metrics(pred[valid].tolist(), gt[valid].tolist())
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-9), k


def test_depth_metrics_bad_input():
    with pytest.raises(ValueError, match="different shapes"):
        depth_metrics(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="> 0"):
        depth_metrics(np.zeros((2, 2)), np.ones((2, 2)), np.ones((2, 2), bool))


def test_eval_crops_and_range():
    nyu = depth_eval_mask(np.full((480, 640), 5.0), min_depth=1e-3, max_depth=10, crop="nyu")
    expected = np.zeros((480, 640), bool)
    expected[45:471, 41:601] = True
    assert (nyu == expected).all()
    with pytest.raises(ValueError, match="480x640"):
        depth_eval_mask(np.ones((240, 320)), min_depth=1e-3, max_depth=10, crop="nyu")

    kitti = np.full((375, 1242), 20.0)
    # Hand-evaluated: int(0.40810811*375)=153, int(0.99189189*375)=371,
    # int(0.03594771*1242)=44, int(0.96405229*1242)=1197; eigen rows 124..342.
    garg = depth_eval_mask(kitti, min_depth=1e-3, max_depth=80, crop="garg")
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    eigen = depth_eval_mask(kitti, min_depth=1e-3, max_depth=80, crop="eigen")
    rows, cols = np.nonzero(eigen)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (124, 342, 44, 1197)

    gt = np.array([[0.0, 1e-3, 0.5], [10.0, 9.99, 12.0]])
    assert (depth_eval_mask(gt, min_depth=1e-3, max_depth=10) == [[0, 0, 1], [0, 1, 0]]).all()
    with pytest.raises(ValueError, match="unknown"):
        depth_eval_mask(gt, min_depth=1e-3, max_depth=10, crop="foo")


def _samples():
    gt1 = np.array([[1.0, 0.0], [2.0, 4.0]])
    pred1 = np.array([[2.0, 3.0], [2.0, 20.0]])  # 20 is clamped to max_depth 10
    gt2 = np.array([[3.0, 3.0, 6.0]])
    pred2 = np.array([[3.0, 1.5, 6.0]])
    return [
        ({"depth": torch.tensor(gt1), "file_name": "a"}, {"depth": torch.tensor(pred1)}),
        ({"depth": torch.tensor(gt2), "file_name": "b"}, {"depth": torch.tensor(pred2)}),
    ]


def _expected_per_image_mean():
    m1 = _hand_metrics([2.0, 2.0, 10.0], [1.0, 2.0, 4.0])
    m2 = _hand_metrics([3.0, 1.5, 6.0], [3.0, 3.0, 6.0])
    return {k: (m1[k] + m2[k]) / 2 for k in m1}


def vpd_reference(pred, gt, min_depth, max_depth, crop_rows=None, crop_cols=None):
    """VPD / Meta-Prompts (GLPDepth) cropping_img + eval_depth for one image, from the definition:
    pred[isinf] = max, pred[isnan] = min, nothing else; valid = min < gt < max (and the crop);
    the metrics over the valid pixels."""
    pred = np.array(pred, dtype=np.float64)
    pred[np.isinf(pred)] = max_depth
    pred[np.isnan(pred)] = min_depth
    valid = (gt > min_depth) & (gt < max_depth)
    if crop_rows is not None:
        box = np.zeros_like(valid)
        box[crop_rows, crop_cols] = True
        valid &= box
    return _hand_metrics(pred[valid].tolist(), gt[valid].tolist())


def test_depth_evaluator_default_is_vpd_protocol():
    """No clamping by default: 20 m stays 20 m; inf scores as max depth and NaN as min depth."""
    rng = np.random.default_rng(0)
    images = []
    for n in range(3):
        gt = rng.uniform(0.5, 12.0, (480, 640))
        gt[rng.random((480, 640)) < 0.2] = 0.0
        pred = rng.uniform(0.2, 25.0, (480, 640))
        pred[5, 50 + n] = np.inf
        pred[100, 100 + n] = np.nan
        images.append((gt, pred))
    ev = DepthEvaluator(min_depth=1e-3, max_depth=10.0, crop="nyu", distributed=False)
    for gt, pred in images:
        ev.process([{"depth": gt}], [{"depth": pred}])
    res = ev.evaluate()["depth"]
    per_image = [vpd_reference(p, g, 1e-3, 10.0, slice(45, 471), slice(41, 601)) for g, p in images]
    for k in per_image[0]:
        assert res[k] == pytest.approx(np.mean([m[k] for m in per_image]), rel=1e-9), k
    clamped = DepthEvaluator(min_depth=1e-3, max_depth=10.0, crop="nyu", clamp_pred=True, distributed=False)
    for gt, pred in images:
        clamped.process([{"depth": gt}], [{"depth": pred}])
    assert clamped.evaluate()["depth"]["rmse"] < res["rmse"]  # the BTS option differs


def test_depth_evaluator_per_image_average_and_clamp():
    ev = DepthEvaluator(min_depth=1e-3, max_depth=10.0, crop="", clamp_pred=True, distributed=False)
    ev.reset()
    for inp, out in _samples():
        ev.process([inp], [out])
    res = ev.evaluate()
    assert set(res) == {"depth"}
    for k, v in _expected_per_image_mean().items():
        assert res["depth"][k] == pytest.approx(v, rel=1e-9), k
    # Pooling pixels instead of averaging per image gives a different RMSE here.
    pooled = _hand_metrics([2.0, 2.0, 10.0, 3.0, 1.5, 6.0], [1.0, 2.0, 4.0, 3.0, 3.0, 6.0])
    assert res["depth"]["rmse"] != pytest.approx(pooled["rmse"])


def test_depth_evaluator_gathers_across_processes(monkeypatch):
    samples = _samples()
    ev = DepthEvaluator(min_depth=1e-3, max_depth=10.0, clamp_pred=True, distributed=True)
    ev.reset()
    ev.process([samples[0][0]], [samples[0][1]])
    other = DepthEvaluator(min_depth=1e-3, max_depth=10.0, clamp_pred=True, distributed=False)
    other.process([samples[1][0]], [samples[1][1]])
    comm = detectron2_comm  # what the evaluators' gather goes through
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [data, other._per_image])
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    res = ev.evaluate()
    for k, v in _expected_per_image_mean().items():
        assert res["depth"][k] == pytest.approx(v, rel=1e-9), k
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ev.evaluate() == {}


def test_depth_evaluator_bad_input():
    ev = DepthEvaluator(distributed=False)
    with pytest.raises(ValueError, match="same size"):
        ev.process([{"depth": np.ones((2, 2))}], [{"depth": np.ones((2, 3))}])
    with pytest.raises(ValueError, match="> 0"):
        ev.process([{"depth": np.ones((1, 2))}], [{"depth": np.array([[1.0, -2.0]])}])
    with pytest.raises(ValueError, match="no ground-truth"):
        ev.process([{"depth": np.zeros((1, 2))}], [{"depth": np.ones((1, 2))}])


def test_depth_evaluator_from_config():
    from odise_ext.config import get_odise_cfg

    cfg = get_odise_cfg()
    cfg.merge_from_list(
        ["MODEL.DEPTH_HEAD.EVAL_CROP", "garg", "MODEL.DEPTH_HEAD.EVAL_MAX_DEPTH", 80.0]
    )
    ev = DepthEvaluator(cfg, distributed=False)
    assert ev._crop == "garg" and ev._max_depth == 80.0 and ev._clamp_pred is False
    with pytest.raises((KeyError, AssertionError), match="NOT_A_KEY"):
        cfg.merge_from_list(["MODEL.DEPTH_HEAD.NOT_A_KEY", 1])


def test_colorize_depth_fixed_range_and_invalid_black(tmp_path):
    depth = np.array([[0.0, 1.0, 3.0], [5.0, np.nan, 9.0]])
    valid = np.array([[True, True, True], [True, True, False]])
    rgb = colorize_depth(depth, valid, vmin=1.0, vmax=5.0, cmap="viridis")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    for r, c in [(0, 0), (1, 1), (1, 2)]:  # depth 0, NaN, masked
        assert (rgb[r, c] == 0).all()
    cmap = matplotlib.colormaps["viridis"]
    for (r, c), t in [((0, 1), 0.0), ((0, 2), 0.5), ((1, 0), 1.0)]:
        want = np.round(np.array(cmap(t)[:3]) * 255).astype(np.uint8)
        assert (rgb[r, c] == want).all()
    path = tmp_path / "d.png"
    save_depth_png(path, depth, valid, vmin=1.0, vmax=5.0, cmap="viridis")
    back = np.asarray(Image.open(path))
    assert back.dtype == np.uint8 and (back == rgb).all()


def test_colorize_depth_per_image_range():
    depth = torch.tensor([[2.0, 4.0], [6.0, 0.0]])
    rgb = colorize_depth(depth, cmap="magma_r")
    cmap = matplotlib.colormaps["magma_r"]
    assert (rgb[0, 0] == np.round(np.array(cmap(0.0)[:3]) * 255)).all()
    assert (rgb[1, 0] == np.round(np.array(cmap(1.0)[:3]) * 255)).all()
    assert (rgb[1, 1] == 0).all()
    assert (colorize_depth(np.zeros((2, 2))) == 0).all()


def test_depth_evaluator_writes_colour_mapped_visualisations(tmp_path):
    ev = DepthEvaluator(min_depth=1e-3, max_depth=10.0, distributed=False, output_dir=str(tmp_path),
                        num_visualizations=1)
    ev.reset()
    for inp, out in _samples():
        ev.process([inp], [out])
    files = sorted(os.listdir(tmp_path / "depth_vis"))
    assert files == ["0_0000_a.png"]  # only the first image; rank and index prefix the name
    panel = np.asarray(Image.open(tmp_path / "depth_vis" / files[0]))
    gt = _samples()[0][0]["depth"].numpy()
    pred = np.clip(_samples()[0][1]["depth"].numpy(), 1e-3, 10.0)
    h, w = gt.shape
    assert panel.shape == (h, 2 * w + 4, 3) and (panel[:, w : w + 4] == 255).all()
    # both halves on the same range [0, max valid gt]: equal depths get equal colours
    vmax = gt[(gt > 1e-3) & (gt < 10.0)].max()
    valid = (gt > 1e-3) & (gt < 10.0)
    assert (panel[:, :w] == colorize_depth(pred, vmin=0.0, vmax=vmax)).all()
    assert (panel[:, w + 4 :] == colorize_depth(gt, valid, vmin=0.0, vmax=vmax)).all()
    assert len(np.unique(panel[:, :w].reshape(-1, 3), axis=0)) > 1  # colour-mapped, not constant
