"""Set criterion: loss values by hand, point sampling, fixed assignments, extra loss terms."""

import math

import pytest
import torch
from torch import nn

import odise_ext.mask2former.criterion as criterion_mod
from odise_ext.config import get_odise_cfg
from odise_ext.mask2former.criterion import (
    MASK_FORMER_LOSS_REGISTRY,
    ClassLoss,
    MaskLoss,
    SetCriterion,
    average_num_masks,
    build_criterion,
    dice_loss,
    sigmoid_ce_loss,
)
from odise_ext.mask2former.matcher import HungarianMatcher
from detectron2.projects.point_rend.point_features import get_uncertain_point_coords_with_randomness, point_sample


def sig(x):
    return 1 / (1 + math.exp(-x))


def bce(x, t):
    return -(t * math.log(sig(x)) + (1 - t) * math.log(1 - sig(x)))


def test_sigmoid_ce_and_dice_by_hand():
    inputs = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected_ce = ((bce(0, 1) + bce(2, 0)) / 2 + (bce(-1, 1) + bce(3, 1)) / 2) / 4
    assert sigmoid_ce_loss(inputs, targets, num_masks=4).item() == pytest.approx(expected_ce, rel=1e-6)
    d0 = 1 - (2 * 0.5 + 1) / (0.5 + sig(2) + 1 + 1)
    d1 = 1 - (2 * (sig(-1) + sig(3)) + 1) / (sig(-1) + sig(3) + 2 + 1)
    assert dice_loss(inputs, targets, num_masks=4).item() == pytest.approx((d0 + d1) / 4, rel=1e-6)


def test_class_loss_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [0.0, 0.0, 0.0]]])  # B=1, Q=3, K=2
    loss = ClassLoss(num_classes=2, no_object_weight=0.1, weight=2.0)
    targets = [{"labels": torch.tensor([0, 1])}]
    indices = [(torch.tensor([0, 2]), torch.tensor([1, 0]))]  # q0 -> class 1, q2 -> class 0, q1 -> no object
    logp = logits[0].log_softmax(-1)
    expected = -(logp[0, 1] + 0.1 * logp[1, 2] + logp[2, 0]) / (1 + 0.1 + 1)
    out = loss({"pred_logits": logits}, targets, indices, num_masks=2.0)
    assert out["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.weight_dict == {"loss_ce": 2.0}
    with pytest.raises(ValueError, match="num_classes"):
        loss({"pred_logits": logits[..., :2]}, targets, indices, 2.0)
    with pytest.raises(ValueError, match="labels"):
        loss({"pred_logits": logits}, [{"labels": torch.tensor([0, 5])}], indices, 2.0)


def naive_mask_losses(pred, tgt):
    """pred, tgt: [N, H, W] on the same grid; per-pixel scalar math; returns summed (bce, dice)."""
    total_bce = total_dice = 0.0
    for x, y in zip(pred.tolist(), tgt.float().tolist()):
        xs = [v for row in x for v in row]
        ys = [v for row in y for v in row]
        total_bce += sum(bce(a, b) for a, b in zip(xs, ys)) / len(xs)
        p = [sig(a) for a in xs]
        total_dice += 1 - (2 * sum(a * b for a, b in zip(p, ys)) + 1) / (sum(p) + sum(ys) + 1)
    return total_bce, total_dice


def test_mask_loss_dense_by_hand():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 4, 3, 5, generator=g) * 2
    targets = [
        {"masks": torch.rand(2, 3, 5, generator=g) > 0.5},
        {"masks": torch.rand(3, 6, 10, generator=g) > 0.5},  # finer canvas: sampled at pred centres
    ]
    targets[1]["masks"] = targets[1]["masks"][:, ::2, ::2].repeat_interleave(2, 1).repeat_interleave(2, 2)
    indices = [(torch.tensor([3]), torch.tensor([1])), (torch.tensor([0, 2]), torch.tensor([2, 0]))]
    loss = MaskLoss(
        num_points=0, oversample_ratio=3.0, importance_sample_ratio=0.75, mask_weight=5.0, dice_weight=5.0
    )
    out = loss({"pred_masks": pred}, targets, indices, num_masks=3.0)
    src = torch.stack([pred[0, 3], pred[1, 0], pred[1, 2]])
    tgt = torch.stack(
        [targets[0]["masks"][1], targets[1]["masks"][2, ::2, ::2], targets[1]["masks"][0, ::2, ::2]]
    )
    exp_bce, exp_dice = naive_mask_losses(src, tgt)
    assert out["loss_mask"].item() == pytest.approx(exp_bce / 3, rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(exp_dice / 3, rel=1e-5)


def test_mask_loss_uses_importance_sampled_points(monkeypatch):
    """Sampled mode: the loss is evaluated at the points chosen by the sampler (replaced here by
    pixel centres we control), with the configured sampling parameters, on the matched masks."""
    calls = []
    h, w = 4, 6

    def fake_sampler(logits, uncertainty, num_points, oversample, importance):
        calls.append((logits.shape, num_points, oversample, importance, logits.requires_grad))
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        coords = torch.stack([(xs.flatten() + 0.5) / w, (ys.flatten() + 0.5) / h], -1)[:num_points]
        return coords[None].expand(logits.shape[0], -1, -1)

    monkeypatch.setattr(criterion_mod, "get_uncertain_point_coords_with_randomness", fake_sampler)
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(1, 3, h, w, generator=g, requires_grad=True)
    targets = [{"masks": torch.rand(2, h, w, generator=g) > 0.5}]
    indices = [(torch.tensor([0, 2]), torch.tensor([1, 0]))]
    loss = MaskLoss(
        num_points=10, oversample_ratio=2.0, importance_sample_ratio=0.5, mask_weight=1.0, dice_weight=1.0
    )
    out = loss({"pred_masks": pred}, targets, indices, num_masks=2.0)
    assert calls == [(torch.Size([2, 1, h, w]), 10, 2.0, 0.5, False)]
    src = torch.stack([pred[0, 0], pred[0, 2]]).detach().flatten(1)[:, :10]
    tgt = torch.stack([targets[0]["masks"][1], targets[0]["masks"][0]]).flatten(1)[:, :10]
    exp_bce, exp_dice = naive_mask_losses(src[:, None], tgt[:, None])
    assert out["loss_mask"].item() == pytest.approx(exp_bce / 2, rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(exp_dice / 2, rel=1e-5)
    (out["loss_mask"] + out["loss_dice"]).backward()
    assert pred.grad[0, 1].abs().sum() == 0  # unmatched query: no mask gradient
    assert pred.grad[0, 0].abs().sum() > 0 and pred.grad[0, 2].abs().sum() > 0


def test_uncertain_point_selection():
    """With a seeded global generator (detectron2's sampler, as Mask2Former uses it): the kept
    points are the most uncertain candidates (|logit| of a bilinear sample, computed here
    independently), followed by fresh uniform points."""
    logits = torch.linspace(-3, 3, 8 * 8).view(1, 1, 8, 8) * torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    seed, num_points, oversample, importance = 7, 6, 4.0, 0.5
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = get_uncertain_point_coords_with_randomness(logits, lambda x: -x.abs(), num_points, oversample, importance)
        assert out.shape == (2, num_points, 2)
        torch.manual_seed(seed)
        candidates = torch.rand(2, int(num_points * oversample), 2)
        fresh = torch.rand(2, num_points - int(num_points * importance), 2)
    for n in range(2):
        vals = point_sample(logits[n : n + 1], candidates[n : n + 1], align_corners=False).flatten().abs()
        best = set(vals.argsort()[:3].tolist())
        chosen = {
            i for i in range(len(candidates[n])) for j in range(3) if torch.equal(candidates[n, i], out[n, j])
        }
        assert chosen == best
    torch.testing.assert_close(out[:, 3:], fresh)


def test_num_masks_averaged_over_processes(monkeypatch):
    assert average_num_masks(0, torch.device("cpu")) == 1.0  # clamped
    assert average_num_masks(5, torch.device("cpu")) == 5.0
    monkeypatch.setattr(criterion_mod.comm, "get_world_size", lambda: 2)

    def fake_all_reduce(t):
        t += 9.0  # the other process has 9 masks

    monkeypatch.setattr(criterion_mod.dist, "all_reduce", fake_all_reduce)
    assert average_num_masks(5, torch.device("cpu")) == 7.0


class _RaisingMatcher(nn.Module):
    def forward(self, outputs, targets):
        raise AssertionError("the matcher must not run when indices are given")


@MASK_FORMER_LOSS_REGISTRY.register()
class _TestQueryNormLoss(nn.Module):
    """Extra term: mean query feature norm (stands in for ODISE's grounding loss)."""

    def __init__(self, cfg=None):
        super().__init__()
        self.weight_dict = {"loss_qnorm": 0.5}

    def forward(self, outputs, targets, indices, num_masks):
        return {"loss_qnorm": outputs["query_features"].norm(dim=-1).mean()}


def _outputs(g, num_aux=2, bs=1, q=3, k=2, h=4, w=4):
    def one():
        return {
            "pred_logits": torch.randn(bs, q, k + 1, generator=g),
            "pred_masks": torch.randn(bs, q, h, w, generator=g),
            "query_features": torch.randn(bs, q, 8, generator=g),
        }

    out = one()
    out["aux_outputs"] = [one() for _ in range(num_aux)]
    return out


def test_set_criterion_fixed_indices_extra_term_and_weights():
    cfg = get_odise_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 2
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 0
    cfg.MODEL.MASK_FORMER.LOSSES = ["ClassLoss", "MaskLoss", "_TestQueryNormLoss"]
    cfg.MODEL.MASK_FORMER.NUM_DECODER_LAYERS = 2
    crit = SetCriterion(cfg, matcher=_RaisingMatcher())
    g = torch.Generator().manual_seed(0)
    outputs = _outputs(g)
    targets = [{"labels": torch.tensor([1, 0]), "masks": torch.rand(2, 4, 4, generator=g) > 0.5}]
    indices = [([2, 0], [0, 1])]  # fixed: q2 <-> t0, q0 <-> t1
    losses = crit(outputs, targets, indices=indices)

    names = ["loss_ce", "loss_mask", "loss_dice", "loss_qnorm"]
    assert set(losses) == {n + s for n in names for s in ("", "_0", "_1")}
    weights = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0, "loss_qnorm": 0.5}
    assert crit.weight_dict == {n + s: weights[n] for n in names for s in ("", "_0", "_1")}
    fixed = [(torch.tensor([2, 0]), torch.tensor([0, 1]))]
    for suffix, pred in [("", outputs), ("_0", outputs["aux_outputs"][0]), ("_1", outputs["aux_outputs"][1])]:
        ce = ClassLoss(num_classes=2, no_object_weight=0.1, weight=1.0)(pred, targets, fixed, 2.0)["loss_ce"]
        assert losses["loss_ce" + suffix].item() == pytest.approx(ce.item(), rel=1e-6)
        src = pred["pred_masks"][0, [2, 0]]
        exp_bce, exp_dice = naive_mask_losses(src, targets[0]["masks"][[0, 1]])
        assert losses["loss_mask" + suffix].item() == pytest.approx(exp_bce / 2, rel=1e-5)
        assert losses["loss_dice" + suffix].item() == pytest.approx(exp_dice / 2, rel=1e-5)
        assert losses["loss_qnorm" + suffix].item() == pytest.approx(
            pred["query_features"].norm(dim=-1).mean().item()
        )

    with pytest.raises(ValueError, match="aux_outputs"):
        crit(dict(outputs, aux_outputs=outputs["aux_outputs"][:1]), targets, indices=indices)
    with pytest.raises(ValueError, match="one-to-one"):
        crit(outputs, targets, indices=[([0, 0], [0, 1])])
    with pytest.raises(ValueError, match="out of range"):
        crit(outputs, targets, indices=[([3], [0])])


def test_set_criterion_matches_and_deep_supervision_off():
    g = torch.Generator().manual_seed(1)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=0)
    terms = {"ClassLoss": ClassLoss(num_classes=2, no_object_weight=0.1, weight=2.0)}
    crit = SetCriterion(matcher=matcher, loss_terms=terms, deep_supervision=False, num_aux_outputs=2)
    outputs = _outputs(g)
    targets = [{"labels": torch.tensor([1]), "masks": torch.rand(1, 4, 4, generator=g) > 0.5}]
    losses = crit(outputs, targets)
    assert set(losses) == {"loss_ce"} and crit.weight_dict == {"loss_ce": 2.0}
    expected = terms["ClassLoss"](outputs, targets, matcher(outputs, targets), 1.0)["loss_ce"]
    assert losses["loss_ce"].item() == pytest.approx(expected.item())


def test_set_criterion_empty_targets_and_bad_term():
    cfg = get_odise_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 2
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 16
    cfg.MODEL.MASK_FORMER.NUM_DECODER_LAYERS = 2
    crit = build_criterion(cfg)
    g = torch.Generator().manual_seed(2)
    outputs = _outputs(g, bs=2)
    outputs["pred_masks"].requires_grad_(True)
    targets = [
        {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8, dtype=torch.bool)},
        {"labels": torch.tensor([1]), "masks": torch.ones(1, 8, 8, dtype=torch.bool)},
    ]
    losses = crit(outputs, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert outputs["pred_masks"].grad[0].abs().sum() == 0  # image without targets: no mask loss
    assert outputs["pred_masks"].grad[1].abs().sum() > 0

    class NoWeight(nn.Module):
        weight_dict = {"loss_a": 1.0}

        def forward(self, *args):
            return {"loss_b": torch.zeros(())}

    bad = SetCriterion(
        matcher=HungarianMatcher(cost_class=1.0, num_points=0),
        loss_terms={"x": NoWeight()},
        deep_supervision=False,
        num_aux_outputs=0,
    )
    with pytest.raises(KeyError, match="loss_b"):
        bad(outputs, targets)


def test_mask_loss_rejects_bad_sampling_ratios_when_built():
    kw = dict(num_points=8, mask_weight=1.0, dice_weight=1.0)
    with pytest.raises(ValueError, match="OVERSAMPLE_RATIO"):
        MaskLoss(oversample_ratio=0.5, importance_sample_ratio=0.5, **kw)
    with pytest.raises(ValueError, match="IMPORTANCE_SAMPLE_RATIO"):
        MaskLoss(oversample_ratio=3.0, importance_sample_ratio=1.5, **kw)
    # the dense (sampling-free) loss does not use the ratios
    MaskLoss(oversample_ratio=0.5, importance_sample_ratio=1.5, **{**kw, "num_points": 0})


def test_point_sample_is_bilinear_with_zero_padding():
    img = torch.arange(12.0).view(1, 1, 3, 4)
    # (x, y) normalised; pixel centres at ((j + 0.5) / 4, (i + 0.5) / 3)
    coords = torch.tensor([[[0.125, 1 / 6], [0.25, 0.5], [0.0, 0.5], [0.375, 0.5]]])
    out = point_sample(img, coords, align_corners=False)
    # centre of (0, 0); halfway between cols 0 and 1 of row 1; left border (half zero padding);
    # centre of (1, 1)
    assert out.flatten().tolist() == pytest.approx([0.0, 4.5, 2.0, 5.0], abs=1e-6)


def test_set_criterion_consumes_random_stream_like_mask2former():
    """Mask2Former's SetCriterion, per prediction (final, then each auxiliary one): the matcher
    draws ``rand(1, P, 2)`` per image (empty ones too), then loss_masks draws
    ``rand(N, int(P * oversample), 2)`` candidates and ``rand(N, P - int(P * importance), 2)``
    random points for the N matched masks of the whole batch. Written here as a plain sequence of
    draws; the criterion must leave the global generator exactly where that sequence does."""
    cfg = get_odise_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 2
    mf = cfg.MODEL.MASK_FORMER
    mf.TRAIN_NUM_POINTS, mf.OVERSAMPLE_RATIO, mf.IMPORTANCE_SAMPLE_RATIO = 10, 3.0, 0.75
    mf.NUM_DECODER_LAYERS = 2
    criterion = build_criterion(cfg)
    g = torch.Generator().manual_seed(4)
    outputs = _outputs(g, num_aux=2, bs=3, q=3)
    h, w = outputs["pred_masks"].shape[-2:]
    targets = [
        {"masks": torch.zeros(0, h, w), "labels": torch.zeros(0, dtype=torch.int64)},
        {"masks": (torch.rand(2, h, w, generator=g) > 0.5).float(), "labels": torch.tensor([0, 1])},
        {"masks": (torch.rand(1, h, w, generator=g) > 0.5).float(), "labels": torch.tensor([1])},
    ]
    torch.manual_seed(77)
    criterion(outputs, targets)
    after = torch.rand(6)

    torch.manual_seed(77)
    num_matched = 3  # min(Q, T) summed over the batch
    for _ in range(3):  # final prediction + 2 auxiliary ones
        for _ in targets:
            torch.rand(1, 10, 2)
        torch.rand(num_matched, 30, 2)
        torch.rand(num_matched, 10 - 7, 2)
    torch.testing.assert_close(after, torch.rand(6), rtol=0, atol=0)
