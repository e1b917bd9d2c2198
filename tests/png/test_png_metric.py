"""Official PNG Average Recall and the PNGEvaluator (odise_ext.png.evaluation)."""
import json
import math

import numpy as np
import pytest
import torch

from odise_ext.png.evaluation import PNGEvaluator, average_recall, mask_iou, png_metrics

GRID = np.arange(0, 1, 0.00001)  # the official threshold grid, built the official way


def literal_official_ar(ious):
    """The definition, literally: recall at every threshold, then the sum over consecutive pairs."""
    ious = np.asarray(ious, dtype=np.float64)
    recall = (ious[None, :] >= GRID[:, None]).sum(axis=1) / len(ious)
    ar = 0.0
    for i in range(len(GRID) - 1):
        ar += abs(GRID[i + 1] - GRID[i]) * recall[i]
    return ar


# ---------------------------------------------------------------- average_recall


def test_grid_is_official():
    assert len(GRID) == 100000 and GRID[0] == 0.0 and GRID[-1] < 1.0


@pytest.mark.parametrize(
    "iou, expected",
    [
        (0.123456, 0.12346),  # thresholds 0 .. 0.12345 pass: AR = t[12346] (telescoping sum)
        (0.5000049, 0.50001),
        (1.0, 0.99999),  # the grid stops at 0.99999: a perfect IoU scores 0.99999
        (0.0, 0.00001),  # IoU 0 still passes threshold 0
    ],
)
def test_single_iou_hand_computed(iou, expected):
    ar = average_recall([iou])
    assert ar == pytest.approx(expected, abs=1e-9)
    assert abs(ar - iou) <= 1e-5 + 1e-12  # "AR equals the IoU up to the grid"


def test_tie_on_grid_point_counts_as_recalled():
    on_grid = GRID[50000]  # exactly a threshold value (not exactly 0.5 in floating point)
    just_below = np.nextafter(on_grid, 0.0)
    # IoU >= t holds at t = on_grid: thresholds 0..50000 pass, AR = t[50001] - t[0]
    assert average_recall([on_grid]) == pytest.approx(GRID[50001], abs=1e-12)
    assert average_recall([just_below]) == pytest.approx(GRID[50000], abs=1e-12)


def test_pool_is_mean_of_individual_curves():
    # recall is a mean over units, so AR of a pool = mean of single-unit ARs; by hand:
    assert average_recall([0.0, 1.0]) == pytest.approx((0.00001 + 0.99999) / 2, abs=1e-9)
    assert average_recall([0.250005, 0.750005, 0.750005]) == pytest.approx((0.25001 + 2 * 0.75001) / 3, abs=1e-9)


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 7), (2, 60)])
def test_matches_literal_official_loop(seed, n):
    rng = np.random.default_rng(seed)
    ious = rng.random(n)
    ious[: n // 4] = GRID[rng.integers(0, len(GRID), n // 4)]  # some exact ties with thresholds
    if n > 2:
        ious[-1], ious[-2] = 0.0, 1.0
    assert average_recall(ious) == literal_official_ar(ious)  # same sums in the same order
    assert average_recall(torch.tensor(ious)) == literal_official_ar(ious)


def test_empty_and_invalid_iou_lists_raise():
    with pytest.raises(ValueError, match="empty"):
        average_recall([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        average_recall([1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        average_recall([float("nan"), -0.1])


def test_nan_iou_counts_but_passes_no_threshold():
    """Official: a phrase with empty prediction and GT has IoU 0/0 = NaN; ``NaN >= t`` is False for
    every t (even 0), but the phrase stays in the denominator -- unlike an IoU of 0."""
    ious = [float("nan"), 1.0, 0.300005]
    assert average_recall(ious) == literal_official_ar(ious)
    assert average_recall(ious) == pytest.approx((0.0 + 0.99999 + GRID[30001]) / 3, abs=1e-9)
    assert average_recall([float("nan")]) == 0.0
    assert average_recall([0.0]) == pytest.approx(0.00001)  # IoU 0 differs from NaN by 1e-5
    r = png_metrics([float("nan"), 1.0], [True, True], [False, False])
    assert r["AR"] == pytest.approx(100 * 0.99999 / 2, abs=1e-7) and r["acc@0.5"] == 50.0


# ---------------------------------------------------------------- IoU and subsets


def test_soft_mask_iou_hand_computed():
    pred = torch.tensor([[[0.5, 1.0], [0.0, 0.0]], [[0.25, 0.25], [0.25, 0.25]], [[0.0, 0.0], [0.0, 0.0]]])
    gt = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    # 1: inter 1.5, union (0.5+1-0.5) + (1+1-1) = 2 -> 0.75
    # 2: inter 0.5, union 1 + 1 + 0.25 + 0.25 = 2.5 -> 0.2
    # 3: empty union -> 0 / 0 = NaN, as the official compute_mask_IoU
    iou = mask_iou(pred, gt).tolist()
    assert iou[:2] == pytest.approx([0.75, 0.2]) and math.isnan(iou[2])


def test_subsets_and_acc():
    ious = [1.0, 0.0, 0.5, 0.750005]
    is_thing = [True, False, True, False]
    plural = [False, False, True, True]
    r = png_metrics(ious, is_thing, plural)
    assert r["AR"] == pytest.approx(100 * (0.99999 + 0.00001 + GRID[50001] + 0.75001) / 4, abs=1e-7)
    assert r["AR_things"] == pytest.approx(100 * (0.99999 + GRID[50001]) / 2, abs=1e-7)
    assert r["AR_stuff"] == pytest.approx(100 * (0.00001 + 0.75001) / 2, abs=1e-7)
    assert r["AR_singulars"] == pytest.approx(100 * (0.99999 + 0.00001) / 2, abs=1e-7)
    assert r["AR_plurals"] == pytest.approx(100 * (GRID[50001] + 0.75001) / 2, abs=1e-7)
    # acc@0.5 is strict (IoU > 0.5), as in the official test_net.py: IoU 0.5 is a miss
    assert r["acc@0.5"] == pytest.approx(50.0)
    assert r["acc@0.5_things"] == pytest.approx(50.0)
    assert r["acc@0.5_plurals"] == pytest.approx(50.0)
    assert r["acc@0.5_singulars"] == pytest.approx(50.0)
    assert png_metrics([0.3], [True], [False])["AR_plurals"] != png_metrics([0.3], [True], [False])["AR_plurals"]  # NaN


# ---------------------------------------------------------------- evaluator


def _narrative(gt, is_thing, plural, image_id=1):
    gt = torch.as_tensor(gt, dtype=torch.bool)
    return {
        "image_id": image_id,
        "narrative_index": image_id,
        "height": gt.shape[-2],
        "width": gt.shape[-1],
        "gt_masks": gt,
        "is_thing": torch.tensor(is_thing),
        "plural": torch.tensor(plural),
    }


def _fixture_inputs():
    g = torch.zeros(3, 8, 8, dtype=torch.bool)
    g[0, :4] = True
    g[1, 2:6, 2:6] = True
    g[2, :, :3] = True
    h = torch.zeros(1, 8, 8, dtype=torch.bool)
    h[0, 5:, 5:] = True
    return [_narrative(g, [True, False, True], [False, True, False], 1), _narrative(h, [False], [True], 2)]


def _run(evaluator, inputs, preds):
    evaluator.reset()
    for inp, pred in zip(inputs, preds):
        evaluator.process([inp], [{"png_masks": pred}])
    return evaluator.evaluate()


def test_evaluator_gt_as_prediction_and_zeros():
    inputs = _fixture_inputs()
    ev = PNGEvaluator("fixture", protocol="exact", distributed=False)
    perfect = _run(ev, inputs, [i["gt_masks"].float() for i in inputs])["png"]
    for key in ("AR", "AR_things", "AR_stuff", "AR_singulars", "AR_plurals"):
        assert perfect[key] == pytest.approx(99.999, abs=1e-6)
    assert perfect["acc@0.5"] == 100.0
    for protocol in ("exact", "official"):
        ev = PNGEvaluator("fixture", protocol=protocol, distributed=False)
        zeros = _run(ev, inputs, [torch.zeros_like(i["gt_masks"], dtype=torch.float) for i in inputs])["png"]
        assert zeros["AR"] == pytest.approx(0.001, abs=1e-9) and zeros["acc@0.5"] == 0.0


def bilinear_matrix(n_out, n_in):
    """[n_out, n_in] weights of 1-D linear interpolation with half-pixel centres
    (align_corners=False, no antialias): output i samples input coordinate (i + 0.5) n_in / n_out
    - 0.5, clamped below at 0, between its two neighbouring pixels (the last one repeated)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(x)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w = x - i0
        m[i, i0] += 1 - w
        m[i, i1] += w
    return m


def official_reference_iou(pred, gt):
    """BCV-Uniandes/PNG's evaluation, written from its definition: GT (H, W) -> Resize((256, 256))
    -> Resize((H, W)); prediction (h, w) -> 256 -> (H, W); IoU = sum(pt) / sum(p + t - pt)."""
    h, w = gt.shape

    def round_trip(x):
        down = bilinear_matrix(256, x.shape[0]) @ x @ bilinear_matrix(256, x.shape[1]).T
        return bilinear_matrix(h, 256) @ down @ bilinear_matrix(w, 256).T

    p, t = round_trip(np.asarray(pred, np.float64)), round_trip(np.asarray(gt, np.float64))
    with np.errstate(invalid="ignore"):
        return (p * t).sum() / (p + t - p * t).sum()


def test_official_protocol_matches_reference_round_trip():
    g = torch.Generator().manual_seed(0)
    gt = torch.zeros(2, 37, 53, dtype=torch.bool)
    gt[0, 5:20, 10:40] = True
    gt[1, 30:, :7] = True
    pred = torch.rand(2, 16, 16, generator=g)  # predictions come at the model's own resolution
    inputs = [_narrative(gt, [True, False], [False, False])]
    official = PNGEvaluator(protocol="official", distributed=False)
    official.process(inputs, [{"png_masks": pred}])
    expected = [official_reference_iou(pred[i].numpy(), gt[i].numpy()) for i in range(2)]
    assert official._ious[0].tolist() == pytest.approx(expected, rel=1e-5)

    # exact: the GT untouched; the prediction bilinear (same 1-D weights) to the GT's size
    exact = PNGEvaluator(protocol="exact", distributed=False)
    exact.process(inputs, [{"png_masks": pred}])
    for i in range(2):
        p = bilinear_matrix(37, 16) @ pred[i].double().numpy() @ bilinear_matrix(53, 16).T
        t = gt[i].double().numpy()
        assert exact._ious[0][i] == pytest.approx((p * t).sum() / (p + t - p * t).sum(), rel=1e-5)
    assert not np.allclose(official._ious[0], exact._ious[0], rtol=1e-3)  # the protocols differ


def test_official_protocol_loses_tiny_segments_as_nan():
    """A 1-pixel segment that no 256x256 sample reaches vanishes; with an empty prediction the
    phrase scores NaN (counts, never recalled), the official behaviour."""
    gt = torch.zeros(2, 600, 600, dtype=torch.bool)
    # 600 -> 256 samples input coordinates 0.671875 + 2.34375 k: none lies within 1 px of 302
    gt[0, 302, 302] = True
    gt[1, :300] = True
    assert official_reference_iou(np.zeros((600, 600)), gt[0].numpy()) != official_reference_iou(
        np.zeros((600, 600)), gt[0].numpy()
    )  # NaN in the reference too
    pred = torch.zeros(2, 600, 600)
    pred[1, :300] = 1.0
    inputs = [_narrative(gt, [True, True], [False, False])]
    ev = PNGEvaluator(protocol="official", distributed=False)
    result = _run(ev, inputs, [pred])["png"]
    iou = ev._ious[0]
    assert math.isnan(iou[0]) and iou[1] == pytest.approx(official_reference_iou(pred[1].numpy(), gt[1].numpy()), rel=1e-5)
    assert result["AR"] == pytest.approx(100 * literal_official_ar(iou), abs=1e-7)
    exact = PNGEvaluator(protocol="exact", distributed=False)
    exact.process(inputs, [{"png_masks": pred}])
    assert exact._ious[0][0] == 0.0  # the full-resolution GT keeps its pixel


def test_evaluator_protocol_from_cfg_and_checks():
    from odise_ext.config.defaults import get_odise_cfg

    cfg = get_odise_cfg()
    assert cfg.MODEL.PNG.EVAL_PROTOCOL == "official"
    assert PNGEvaluator(cfg, dataset_name="x")._protocol == "official"
    cfg.MODEL.PNG.EVAL_PROTOCOL = "exact"
    assert PNGEvaluator(cfg, dataset_name="x")._protocol == "exact"
    cfg.MODEL.PNG.EVAL_PROTOCOL = "512"
    with pytest.raises(ValueError, match="protocol"):
        PNGEvaluator(cfg, dataset_name="x")
    inp = dict(_fixture_inputs()[0], height=16, width=16)  # GT not at the original resolution
    with pytest.raises(ValueError, match="original resolution"):
        PNGEvaluator(distributed=False).process([inp], [{"png_masks": torch.zeros(3, 8, 8)}])


def test_evaluator_rejects_bad_predictions():
    inputs = _fixture_inputs()[:1]
    ev = PNGEvaluator(distributed=False)
    with pytest.raises(ValueError, match="one per phrase"):
        ev.process(inputs, [{"png_masks": torch.zeros(2, 8, 8)}])
    with pytest.raises(ValueError, match="probabilities"):
        ev.process(inputs, [{"png_masks": torch.full((3, 8, 8), -3.0)}])
    with pytest.raises(KeyError, match="png_masks"):
        ev.process(inputs, [{"sem_seg": torch.zeros(3, 8, 8)}])


# ---------------------------------------------------------------- two processes (gloo on CPU)


def _distributed_worker(out_path):
    """Runs in each of 2 processes: rank r evaluates narrative r, rank 0 writes the result."""
    from detectron2.utils import comm

    torch.set_num_threads(1)
    inputs = _fixture_inputs()
    rank = comm.get_rank()
    inp = inputs[rank]
    pred = inp["gt_masks"].float() * (0.5 if rank == 0 else 1.0)
    ev = PNGEvaluator("fixture", protocol="exact", distributed=True)
    ev.process([inp], [{"png_masks": pred}])
    result = ev.evaluate()
    if comm.is_main_process():
        with open(out_path, "w") as f:
            json.dump(result, f)
    else:
        assert result == {}
    # leave the group together, as tools/train_net.py does: exiting with gloo's threads running
    # can abort the process
    comm.synchronize()
    torch.distributed.destroy_process_group()


@pytest.mark.timeout(120)
def test_evaluator_gathers_across_two_processes(tmp_path):
    from detectron2.engine import launch

    out = tmp_path / "result.json"
    launch(_distributed_worker, 2, dist_url="auto", args=(str(out),))
    got = json.loads(out.read_text())["png"]
    # single process on the same (input, prediction) pairs
    inputs = _fixture_inputs()
    preds = [inputs[0]["gt_masks"].float() * 0.5, inputs[1]["gt_masks"].float()]
    expected = _run(PNGEvaluator(protocol="exact", distributed=False), inputs, preds)["png"]
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key]) or (math.isnan(got[key]) and math.isnan(expected[key]))
    # 3 phrases with soft IoU 0.5 (p = 0.5 on the GT: inter 0.5 |t|, union |t|) and one with IoU 1
    assert got["AR"] == pytest.approx(100 * (3 * GRID[50001] + 0.99999) / 4, abs=1e-6)
