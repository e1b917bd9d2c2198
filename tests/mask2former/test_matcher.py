"""Hungarian matcher: costs against a naive formulation, assignment against brute force."""

import itertools
import math

import pytest
import torch
from detectron2.config import get_cfg
from scipy.optimize import linear_sum_assignment

from odise_ext.config import add_odise_config
from odise_ext.mask2former.matcher import HungarianMatcher


def naive_cost(pred_masks, pred_logits, tgt_masks, tgt_labels, wc, wm, wd):
    """Per-pair, per-pixel cost with scalar math (pred and target on the same grid)."""
    prob = pred_logits.softmax(-1)
    cost = torch.zeros(pred_masks.shape[0], tgt_masks.shape[0], dtype=torch.float64)
    for q in range(pred_masks.shape[0]):
        x = pred_masks[q].flatten().tolist()
        for t in range(tgt_masks.shape[0]):
            y = tgt_masks[t].flatten().float().tolist()
            p = [1 / (1 + math.exp(-v)) for v in x]
            bce = sum(-(yi * math.log(pi) + (1 - yi) * math.log(1 - pi)) for pi, yi in zip(p, y)) / len(x)
            dice = 1 - (2 * sum(pi * yi for pi, yi in zip(p, y)) + 1) / (sum(p) + sum(y) + 1)
            cost[q, t] = wm * bce + wd * dice - wc * prob[q, tgt_labels[t]].item()
    return cost


def brute_force_min(cost):
    """Minimum total cost over all one-to-one assignments of min(Q, T) pairs."""
    n_q, n_t = cost.shape
    if n_t <= n_q:
        return min(
            sum(cost[q, t] for t, q in enumerate(perm)) for perm in itertools.permutations(range(n_q), n_t)
        )
    return min(
        sum(cost[q, t] for q, t in enumerate(perm)) for perm in itertools.permutations(range(n_t), n_q)
    )


@pytest.mark.parametrize("num_queries,num_targets", [(5, 3), (4, 4), (3, 5)])
def test_assignment_is_brute_force_minimum(num_queries, num_targets):
    g = torch.Generator().manual_seed(num_queries * 10 + num_targets)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=0)
    bs, k, h, w = 2, 4, 5, 6
    outputs = {
        "pred_masks": torch.randn(bs, num_queries, h, w, generator=g) * 3,
        "pred_logits": torch.randn(bs, num_queries, k + 1, generator=g) * 2,
    }
    targets = [
        {
            "masks": torch.rand(num_targets, h, w, generator=g) > 0.5,
            "labels": torch.randint(0, k, (num_targets,), generator=g),
        }
        for _ in range(bs)
    ]
    indices = matcher(outputs, targets)
    for b, (src, tgt) in enumerate(indices):
        cost = naive_cost(
            outputs["pred_masks"][b].double(),
            outputs["pred_logits"][b].double(),
            targets[b]["masks"],
            targets[b]["labels"],
            2,
            5,
            5,
        )
        torch.testing.assert_close(
            matcher.cost_matrix(
                outputs["pred_masks"][b], targets[b]["masks"], outputs["pred_logits"][b], targets[b]["labels"]
            ).double(),
            cost,
            rtol=1e-5,
            atol=1e-5,
        )
        assert len(src) == len(tgt) == min(num_queries, num_targets)
        assert src.dtype == tgt.dtype == torch.int64
        assert torch.equal(src, src.sort().values)
        assert len(set(src.tolist())) == len(src) and len(set(tgt.tolist())) == len(tgt)
        assert cost[src, tgt].sum().item() == pytest.approx(brute_force_min(cost).item(), abs=1e-9)


def test_targets_on_finer_canvas_give_same_cost():
    """Dense mode samples targets at the prediction's pixel centres: a 2x nearest-upsampled
    target must cost exactly what the target at the prediction's resolution costs."""
    g = torch.Generator().manual_seed(3)
    matcher = HungarianMatcher(cost_class=0.0, cost_mask=1.0, cost_dice=1.0, num_points=0)
    pred = torch.randn(3, 4, 5, generator=g)
    tgt = torch.rand(2, 4, 5, generator=g) > 0.5
    fine = tgt.repeat_interleave(2, 1).repeat_interleave(2, 2)
    torch.testing.assert_close(matcher.cost_matrix(pred, fine), matcher.cost_matrix(pred, tgt))


def test_sampled_points_recover_obvious_assignment():
    torch.manual_seed(0)
    h = w = 16
    quadrants = torch.zeros(4, h, w, dtype=torch.bool)
    quadrants[0, :8, :8] = quadrants[1, :8, 8:] = quadrants[2, 8:, :8] = quadrants[3, 8:, 8:] = True
    perm = [2, 0, 3, 1]  # query q predicts quadrant perm[q]
    pred_masks = torch.where(quadrants[perm], 8.0, -8.0)[None]
    pred_masks = torch.cat([pred_masks, torch.full((1, 2, h, w), -8.0)], 1)  # two empty extra queries
    logits = torch.full((1, 6, 5), -5.0)
    for q, quad in enumerate(perm):
        logits[0, q, quad] = 5.0
    targets = [{"masks": quadrants, "labels": torch.arange(4)}]
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=64)
    src, tgt = matcher({"pred_masks": pred_masks, "pred_logits": logits}, targets)[0]
    assert src.tolist() == [0, 1, 2, 3]
    assert tgt.tolist() == perm


def test_from_config_and_edge_cases():
    cfg = get_cfg()
    add_odise_config(cfg)
    matcher = HungarianMatcher(cfg)
    assert (matcher.cost_class, matcher.cost_mask, matcher.cost_dice, matcher.num_points) == (
        2.0,
        5.0,
        5.0,
        12544,
    )

    outputs = {"pred_masks": torch.randn(2, 3, 4, 4), "pred_logits": torch.randn(2, 3, 3)}
    targets = [
        {"masks": torch.zeros(0, 4, 4), "labels": torch.zeros(0, dtype=torch.int64)},
        {"masks": torch.ones(1, 4, 4), "labels": torch.tensor([1])},
    ]
    indices = matcher(outputs, targets)
    assert indices[0][0].numel() == 0 and indices[1][0].numel() == 1

    # masks-only matching (no class predictions)
    masks_only = HungarianMatcher(cost_class=0.0, cost_mask=1.0, cost_dice=1.0, num_points=0)
    assert len(masks_only({"pred_masks": outputs["pred_masks"]}, targets)[1][0]) == 1

    with pytest.raises(ValueError, match="labels"):
        matcher(outputs, [targets[0], {"masks": torch.ones(1, 4, 4), "labels": torch.tensor([2])}])
    bad = dict(outputs, pred_masks=outputs["pred_masks"].clone())
    bad["pred_masks"][1, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="image 1"):
        HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=0)(bad, targets)
    with pytest.raises(ValueError, match="targets"):
        matcher(outputs, targets[:1])


def test_random_stream_draws_per_image_like_mask2former():
    """Mask2Former's matcher draws ``torch.rand(1, num_points, 2)`` for every image in batch
    order, images without targets included: after matching, the global generator must be where
    that reference sequence of draws leaves it, and image b must be matched on the b-th draw."""
    num_points, q, h, w = 16, 4, 8, 8
    g = torch.Generator().manual_seed(11)
    outputs = {"pred_masks": torch.randn(4, q, h, w, generator=g) * 4, "pred_logits": torch.randn(4, q, 4, generator=g)}
    masks = torch.rand(2, h, w, generator=g) > 0.5
    labels = torch.tensor([0, 2])
    empty = {"masks": torch.zeros(0, h, w, dtype=torch.bool), "labels": torch.zeros(0, dtype=torch.int64)}
    targets = [empty, {"masks": masks, "labels": labels}, empty, {"masks": masks[:1], "labels": labels[:1]}]
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=num_points)

    torch.manual_seed(123)
    indices = matcher(outputs, targets)
    after = torch.rand(8)

    torch.manual_seed(123)
    draws = [torch.rand(1, num_points, 2) for _ in targets]  # the reference: one draw per image
    torch.testing.assert_close(after, torch.rand(8), rtol=0, atol=0)
    for b in (1, 3):
        cost = matcher.cost_matrix(
            outputs["pred_masks"][b], targets[b]["masks"], outputs["pred_logits"][b], targets[b]["labels"],
            point_coords=draws[b],
        )
        src, tgt = linear_sum_assignment(cost.numpy())
        assert indices[b][0].tolist() == src.tolist() and indices[b][1].tolist() == tgt.tolist()

    # dense matching (num_points == 0) draws nothing
    torch.manual_seed(5)
    HungarianMatcher(cost_class=1.0, num_points=0)(outputs, targets)
    after = torch.rand(4)
    torch.manual_seed(5)
    torch.testing.assert_close(after, torch.rand(4), rtol=0, atol=0)
