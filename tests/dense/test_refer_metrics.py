import numpy as np
import pytest
import torch
from detectron2.utils import comm as detectron2_comm

from odise_ext.dense.evaluation.refer import ReferEvaluator, refer_iou_stats


def _samples():
    # 1: pred 4 px, gt 4 px, overlap 2 → I=2, U=6
    gt1 = np.zeros((3, 4), bool)
    gt1[0, :4] = True
    pred1 = np.zeros((3, 4), bool)
    pred1[0, 2:] = True
    pred1[1, 2:] = True
    # 2: perfect → I=U=3
    gt2 = np.zeros((2, 5), bool)
    gt2[1, 1:4] = True
    pred2 = gt2.copy()
    # 3: probability map, 0.5 threshold → pred {(0,0),(0,1),(1,0)} vs gt {(0,0),(0,1),(1,0),(1,1)}
    gt3 = torch.tensor([[1, 1], [1, 1]], dtype=torch.uint8)
    prob3 = torch.tensor([[0.9, 0.51], [0.7, 0.5]])
    return [
        ({"ref_mask": gt1}, {"ref_mask": torch.from_numpy(pred1)}),
        ({"ref_mask": torch.from_numpy(gt2)}, {"ref_mask": pred2}),
        ({"ref_mask": gt3}, {"ref_mask": prob3}),
    ]


def _expected():
    ious = [2 / 6, 1.0, 3 / 4]
    out = {"oIoU": 100 * 8 / 13, "mIoU": 100 * sum(ious) / 3}
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        out[f"prec@{t}"] = 100 * sum(i >= t for i in ious) / 3
    return out


def test_iou_stats_by_hand():
    stats = [refer_iou_stats(o["ref_mask"], i["ref_mask"]) for i, o in _samples()]
    assert stats == [(2, 6), (3, 3), (3, 4)]


def test_refer_evaluator_values():
    ev = ReferEvaluator(threshold=0.5, distributed=False)
    ev.reset()
    for inp, out in _samples():
        ev.process([inp], [out])
    res = ev.evaluate()
    assert set(res) == {"refer"}
    expected = _expected()
    assert set(res["refer"]) == set(expected)
    for k, v in expected.items():
        assert res["refer"][k] == pytest.approx(v), k
    # the two means genuinely differ on this data
    assert res["refer"]["oIoU"] != pytest.approx(res["refer"]["mIoU"])


def test_precision_threshold_inclusive_and_empty_masks():
    ev = ReferEvaluator(distributed=False)
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 1, 1, 1]], bool)  # IoU exactly 0.5
    ev.process([{"ref_mask": gt}], [{"ref_mask": pred}])
    empty = np.zeros((1, 4), bool)
    ev.process([{"ref_mask": empty}], [{"ref_mask": empty}])  # both empty → IoU 0 (LAVT/VPD)
    res = ev.evaluate()["refer"]
    assert res["prec@0.5"] == pytest.approx(50.0)
    assert res["prec@0.6"] == pytest.approx(0.0)
    assert res["mIoU"] == pytest.approx(25.0)
    assert res["oIoU"] == pytest.approx(50.0)
    # the named alternative: both empty = a perfect match
    ev1 = ReferEvaluator(empty_iou=1.0, distributed=False)
    ev1._stats = list(ev._stats)
    res1 = ev1.evaluate()["refer"]
    assert (res1["prec@0.5"], res1["prec@0.6"], res1["mIoU"], res1["oIoU"]) == pytest.approx((100, 50, 75, 50))
    with pytest.raises(ValueError, match="EMPTY_IOU"):
        ReferEvaluator(empty_iou=0.5, distributed=False)


def lavt_reference(samples, threshold=0.5):
    """LAVT/VPD test.py, written from its definition: per sample I = |p & g|, U = |p | g|,
    this_iou = 0 if U == 0 else I / U; cum_I += I, cum_U += U; seg_correct[k] += this_iou >= X_k;
    mIoU = mean(this_iou); oIoU = cum_I / cum_U; prec@X = seg_correct / seg_total (percent)."""
    cum_i = cum_u = 0
    ious, correct = [], [0] * 5
    for gt, pred in samples:
        p = np.asarray(pred) > threshold if np.asarray(pred).dtype != bool else np.asarray(pred)
        g = np.asarray(gt).astype(bool)
        i, u = int((p & g).sum()), int((p | g).sum())
        this_iou = 0.0 if u == 0 else i / u
        ious.append(this_iou)
        cum_i, cum_u = cum_i + i, cum_u + u
        for k, x in enumerate((0.5, 0.6, 0.7, 0.8, 0.9)):
            correct[k] += this_iou >= x
    out = {"oIoU": 100 * cum_i / cum_u, "mIoU": 100 * float(np.mean(ious))}
    for k, x in enumerate((0.5, 0.6, 0.7, 0.8, 0.9)):
        out[f"prec@{x}"] = 100 * correct[k] / len(samples)
    return out


def test_refer_metrics_match_lavt_reference_on_random_masks():
    rng = np.random.default_rng(0)
    samples = []
    for n in range(40):
        gt = rng.random((6, 7)) < rng.random() * 0.6
        pred = rng.random((6, 7)) * (0.2 + rng.random())
        if n % 9 == 0:  # some both-empty samples
            gt[:] = False
            pred[:] = 0.0
        samples.append((gt, pred))
    ev = ReferEvaluator(distributed=False)
    for gt, pred in samples:
        ev.process([{"ref_mask": gt}], [{"ref_mask": pred}])
    res = ev.evaluate()["refer"]
    expected = lavt_reference(samples)
    assert set(res) == set(expected)
    for k, v in expected.items():
        assert res[k] == pytest.approx(v), k


def test_refer_evaluator_gathers(monkeypatch):
    samples = _samples()
    ev = ReferEvaluator(distributed=True)
    ev.reset()
    ev.process([samples[0][0]], [samples[0][1]])
    other = ReferEvaluator(distributed=False)
    for inp, out in samples[1:]:
        other.process([inp], [out])
    comm = detectron2_comm  # what the evaluators' gather goes through
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [data, other._stats])
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    res = ev.evaluate()["refer"]
    for k, v in _expected().items():
        assert res[k] == pytest.approx(v), k
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ev.evaluate() == {}


def test_refer_bad_input_and_config():
    ev = ReferEvaluator(distributed=False)
    with pytest.raises(ValueError, match="same size"):
        ev.process([{"ref_mask": np.zeros((2, 2), bool)}], [{"ref_mask": np.zeros((2, 3), bool)}])
    assert ev.evaluate() == {}

    from odise_ext.config import get_odise_cfg

    cfg = get_odise_cfg()
    cfg.MODEL.REFER_HEAD.EVAL_THRESHOLD = 0.8
    assert cfg.MODEL.REFER_HEAD.EMPTY_IOU == 0.0 and cfg.MODEL.REFER_HEAD.EVAL_AT_INPUT_SIZE
    cfg.MODEL.REFER_HEAD.EMPTY_IOU = 1.0
    assert ReferEvaluator(cfg, distributed=False)._empty_iou == 1.0
    cfg.MODEL.REFER_HEAD.EMPTY_IOU = 0.0
    ev = ReferEvaluator(cfg, distributed=False)
    ev.process([{"ref_mask": np.ones((1, 2), bool)}], [{"ref_mask": np.array([[0.9, 0.7]])}])
    assert ev.evaluate()["refer"]["oIoU"] == pytest.approx(50.0)
