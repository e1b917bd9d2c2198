import itertools
import math

import numpy as np
import pytest
import torch

from odise_ext.dense.losses.lovasz import lovasz_softmax
from odise_ext.dense.losses.silog import SiLogLoss, silog_loss


# ----------------------------------------------------------------------------- SiLog


def test_silog_hand_computed():
    # valid pixels (gt > 0): d = log(gt) - log(pred) = [0, -1, 0]
    pred = torch.tensor([[1.0, math.e], [2.0, 5.0]])
    gt = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    expected = math.sqrt(1 / 3 - 0.5 * (1 / 3) ** 2)  # sqrt(5/18)
    assert silog_loss(pred, gt).item() == pytest.approx(expected, rel=1e-6)


def test_silog_matches_direct_formula_with_lambda():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.5, 9.0, size=(2, 5, 7))
    gt = rng.uniform(0.5, 9.0, size=(2, 5, 7))
    gt[rng.random(gt.shape) < 0.3] = 0.0
    for lambd in (0.0, 0.5, 0.85):
        m = gt > 0
        d = np.log(gt[m]) - np.log(pred[m])
        expected = np.sqrt(np.mean(d**2) - lambd * np.mean(d) ** 2)
        got = silog_loss(torch.tensor(pred), torch.tensor(gt), lambd=lambd).item()
        assert got == pytest.approx(expected, rel=1e-9)


def test_silog_constant_scale_error():
    gt = torch.tensor([1.0, 2.0, 4.0])
    # pred = 2 gt: d = -ln 2 everywhere → sqrt(ln2^2 (1 - λ))
    assert silog_loss(2 * gt, gt).item() == pytest.approx(math.log(2) / math.sqrt(2), rel=1e-6)
    # λ = 1 is fully scale invariant (up to the 1e-6 floor).
    assert silog_loss(2 * gt, gt, lambd=1.0).item() < 1e-5


def test_silog_explicit_valid_mask_and_weight():
    pred = torch.tensor([1.0, 3.0, 2.0])
    gt = torch.tensor([1.0, 1.0, 1.0])
    valid = torch.tensor([True, False, True])
    d = np.array([0.0, -math.log(2)])
    expected = np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2)
    assert silog_loss(pred, gt, valid).item() == pytest.approx(expected, rel=1e-6)
    module = SiLogLoss(lambd=0.5, loss_weight=3.0)
    assert module(pred, gt, valid).item() == pytest.approx(3 * expected, rel=1e-6)


def test_silog_gradients_finite_and_flowing():
    gt = torch.tensor([1.0, 2.0, 0.0, 3.0])
    pred = torch.tensor([1.5, 1.0, 7.0, 3.0], requires_grad=True)
    silog_loss(pred, gt).backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[2] == 0  # invalid pixel
    assert pred.grad[0] != 0 and pred.grad[1] != 0
    perfect = gt.clone().clamp(min=1.0).requires_grad_(True)
    silog_loss(perfect, gt.clamp(min=1.0)).backward()
    assert torch.isfinite(perfect.grad).all()


def test_silog_bad_input():
    with pytest.raises(ValueError, match="shape"):
        silog_loss(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match="no valid"):
        silog_loss(torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match="> 0"):
        silog_loss(torch.tensor([0.0, 1.0]), torch.ones(2))


# ----------------------------------------------------------------------------- Lovász


def _lovasz_from_definition(probs, labels, classes):
    """Lovász extension of Δ(M) = |M| / |F ∪ M| evaluated with explicit sets."""
    losses = []
    n = len(labels)
    for c in classes:
        fg = {i for i in range(n) if labels[i] == c}
        errors = [abs((1.0 if i in fg else 0.0) - probs[i][c]) for i in range(n)]
        order = sorted(range(n), key=lambda i: -errors[i])
        total, prev, chosen = 0.0, 0.0, set()
        for i in order:
            chosen.add(i)
            delta = len(chosen) / len(fg | chosen)
            total += errors[i] * (delta - prev)
            prev = delta
        losses.append(total)
    return sum(losses) / len(losses)


def test_lovasz_matches_set_definition_two_classes():
    probs1 = [0.9, 0.6, 0.3, 0.2, 0.55, 0.1]
    probs = [[1 - p, p] for p in probs1]
    labels = [1, 1, 0, 1, 0, 0]
    expected = _lovasz_from_definition(probs, labels, classes=[0, 1])
    got = lovasz_softmax(torch.tensor(probs), torch.tensor(labels))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_lovasz_matches_set_definition_multiclass_4d_with_ignore():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 3)
    labels = torch.tensor([[[0, 2, 2], [255, 0, 2]], [[2, 0, 255], [0, 0, 2]]])  # class 1 absent
    probs = logits.softmax(1)
    flat_p = probs.permute(0, 2, 3, 1).reshape(-1, 3)
    flat_l = labels.reshape(-1)
    keep = flat_l != 255
    p_list, l_list = flat_p[keep].tolist(), flat_l[keep].tolist()
    got_present = lovasz_softmax(probs, labels, ignore_index=255)
    assert got_present.item() == pytest.approx(_lovasz_from_definition(p_list, l_list, [0, 2]))
    got_all = lovasz_softmax(probs, labels, ignore_index=255, classes="all")
    assert got_all.item() == pytest.approx(_lovasz_from_definition(p_list, l_list, [0, 1, 2]))


def test_lovasz_absent_class_costs_its_largest_probability():
    probs = torch.tensor([[0.7, 0.3], [0.9, 0.1], [0.6, 0.4]])
    labels = torch.tensor([0, 0, 0])
    # For class 1 (absent) every mistake makes Δ = 1, so the extension is max_i p_i(1).
    assert lovasz_softmax(probs, labels, classes=[1]).item() == pytest.approx(0.4)


def test_lovasz_hard_predictions_equal_one_minus_iou():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    pred = np.array([0, 1, 1, 1, 2, 0, 2, 2])
    probs = torch.nn.functional.one_hot(torch.tensor(pred), 3).float()
    ious = []
    for c in range(3):
        inter = np.sum((labels == c) & (pred == c))
        union = np.sum((labels == c) | (pred == c))
        ious.append(inter / union)
    expected = np.mean([1 - iou for iou in ious])
    assert lovasz_softmax(probs, torch.tensor(labels)).item() == pytest.approx(expected)


def test_lovasz_perfect_prediction_is_zero_and_gradients_flow():
    labels = torch.tensor([[0, 1], [2, 1]])
    perfect = torch.nn.functional.one_hot(labels, 3).permute(2, 0, 1)[None].float()
    assert lovasz_softmax(perfect, labels[None]).item() == pytest.approx(0.0, abs=1e-7)
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    lovasz_softmax(logits.softmax(1), labels[None]).backward()
    assert logits.grad.abs().sum() > 0


def test_lovasz_tie_order_does_not_matter():
    # Equal errors in different orders give the same value (well-defined extension).
    probs = torch.tensor([[0.5, 0.5]] * 4)
    for labels in itertools.permutations([0, 0, 1, 1]):
        got = lovasz_softmax(probs, torch.tensor(labels)).item()
        ref = _lovasz_from_definition(probs.tolist(), list(labels), [0, 1])
        assert got == pytest.approx(ref)


def test_lovasz_bad_input():
    with pytest.raises(ValueError, match="ignore"):
        lovasz_softmax(torch.full((3, 2), 0.5), torch.full((3,), 255))
    with pytest.raises(ValueError, match="outside"):
        lovasz_softmax(torch.full((3, 2), 0.5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="do not match"):
        lovasz_softmax(torch.rand(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
