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
        average_recall([0.5, float("nan")])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        average_recall([1.5])


# ---------------------------------------------------------------- IoU and subsets


def test_soft_mask_iou_hand_computed():
    pred = torch.tensor([[[0.5, 1.0], [0.0, 0.0]], [[0.25, 0.25], [0.25, 0.25]], [[0.0, 0.0], [0.0, 0.0]]])
    gt = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    # 1: inter 1.5, union (0.5+1-0.5) + (1+1-1) = 2 -> 0.75
    # 2: inter 0.5, union 1 + 1 + 0.25 + 0.25 = 2.5 -> 0.2
    # 3: empty union -> 0 (the official NaN never passes a threshold either)
    assert mask_iou(pred, gt).tolist() == pytest.approx([0.75, 0.2, 0.0])


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
    ev = PNGEvaluator("fixture", eval_resolution=0, distributed=False)
    perfect = _run(ev, inputs, [i["gt_masks"].float() for i in inputs])["png"]
    for key in ("AR", "AR_things", "AR_stuff", "AR_singulars", "AR_plurals"):
        assert perfect[key] == pytest.approx(99.999, abs=1e-6)
    assert perfect["acc@0.5"] == 100.0
    zeros = _run(ev, inputs, [torch.zeros_like(i["gt_masks"], dtype=torch.float) for i in inputs])["png"]
    assert zeros["AR"] == pytest.approx(0.001, abs=1e-9) and zeros["acc@0.5"] == 0.0


def test_evaluator_resizes_prediction_to_eval_resolution():
    gt = torch.zeros(1, 8, 8, dtype=torch.bool)
    gt[0, :4] = True
    pred = torch.zeros(1, 4, 4)
    pred[0, :2] = 1.0
    inputs = [_narrative(gt, [True], [False])]
    # at 8x8 (original size) the bilinear upsampling of rows [1, 1, 0, 0] gives rows
    # [1, 1, 1, .75, .25, 0, 0, 0]: IoU = (3 + .75) / (4 + .25) per column
    ev = PNGEvaluator(eval_resolution=0, distributed=False)
    ev.process(inputs, [{"png_masks": pred}])
    assert ev._ious[0][0] == pytest.approx(3.75 / 4.25)
    # at 4x4 the GT is downsampled (nearest) and equals the prediction exactly
    ev = PNGEvaluator(eval_resolution=4, distributed=False)
    ev.process(inputs, [{"png_masks": pred}])
    assert ev._ious[0][0] == pytest.approx(1.0)


def test_evaluator_reads_resolution_from_cfg():
    from odise_ext.config.defaults import get_odise_cfg

    cfg = get_odise_cfg()
    cfg.MODEL.PNG.EVAL_RESOLUTION = 4
    assert PNGEvaluator(cfg, dataset_name="x")._eval_resolution == 4


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
    ev = PNGEvaluator("fixture", eval_resolution=0, distributed=True)
    ev.process([inp], [{"png_masks": pred}])
    result = ev.evaluate()
    if comm.is_main_process():
        with open(out_path, "w") as f:
            json.dump(result, f)
    else:
        assert result == {}


@pytest.mark.timeout(120)
def test_evaluator_gathers_across_two_processes(tmp_path):
    from detectron2.engine import launch

    out = tmp_path / "result.json"
    launch(_distributed_worker, 2, dist_url="auto", args=(str(out),))
    got = json.loads(out.read_text())["png"]
    # single process on the same (input, prediction) pairs
    inputs = _fixture_inputs()
    preds = [inputs[0]["gt_masks"].float() * 0.5, inputs[1]["gt_masks"].float()]
    expected = _run(PNGEvaluator(distributed=False), inputs, preds)["png"]
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key]) or (math.isnan(got[key]) and math.isnan(expected[key]))
    # 3 phrases with soft IoU 0.5 (p = 0.5 on the GT: inter 0.5 |t|, union |t|) and one with IoU 1
    assert got["AR"] == pytest.approx(100 * (3 * GRID[50001] + 0.99999) / 4, abs=1e-6)
