"""Semantic / panoptic / instance inference on hand-made predictions."""

import math

import pytest
import torch

from odise_ext.mask2former.postprocessing import instance_inference, panoptic_inference, semantic_inference

ON, OFF = 10.0, -10.0


def log_probs(*rows):
    """Class logits whose softmax is exactly the given probabilities."""
    return torch.tensor(rows).log()


def masks(h, w, *regions):
    """One mask-logit map per region (a tuple of row / column slices)."""
    out = torch.full((len(regions), h, w), OFF)
    for i, (rows, cols) in enumerate(regions):
        out[i, rows, cols] = ON
    return out


def test_semantic_inference_by_hand():
    g = torch.Generator().manual_seed(0)
    mask_cls, mask_pred = torch.randn(4, 4, generator=g), torch.randn(4, 2, 3, generator=g)
    out = semantic_inference(mask_cls, mask_pred)
    assert out.shape == (3, 2, 3)
    for c in range(3):
        for i in range(2):
            for j in range(3):
                expected = 0.0
                for q in range(4):
                    p = math.exp(mask_cls[q, c]) / sum(math.exp(v) for v in mask_cls[q].tolist())
                    expected += p / (1 + math.exp(-mask_pred[q, i, j]))
                assert out[c, i, j].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="one image"):
        semantic_inference(mask_cls[None], mask_pred[None])


def test_panoptic_merges_stuff_and_drops_void_and_hidden_queries():
    all_rows, top, bottom, left, right = slice(0, 4), slice(0, 2), slice(2, 4), slice(0, 2), slice(2, 4)
    mask_cls = log_probs(
        [0.9, 0.03, 0.03, 0.04],  # q0: thing 0, left half
        [0.02, 0.8, 0.08, 0.1],  # q1: stuff 1, top right
        [0.05, 0.7, 0.05, 0.2],  # q2: stuff 1, bottom right -> merged with q1
        [0.1, 0.1, 0.1, 0.7],  # q3: "no object", whole image -> dropped
        [0.05, 0.05, 0.85, 0.05],  # q4: stuff 2 inside q0's region, lower score -> wins nothing
    )
    mask_pred = masks(
        4, 4, (all_rows, left), (top, right), (bottom, right), (all_rows, slice(0, 4)), (top, left)
    )
    seg, info = panoptic_inference(
        mask_cls, mask_pred, num_classes=3, thing_ids={0}, object_mask_threshold=0.0, overlap_threshold=0.8
    )
    expected = torch.tensor([[1, 1, 2, 2]] * 4, dtype=torch.int32)
    assert seg.dtype == torch.int32
    assert torch.equal(seg, expected)
    assert info == [
        {"id": 1, "isthing": True, "category_id": 0},
        {"id": 2, "isthing": False, "category_id": 1},
    ]


def test_panoptic_overlap_and_object_thresholds():
    # q0 (score 0.9) covers rows 0-1; q1 (0.8) covers rows 1-3 but loses row 1 to q0, keeping
    # 8 of its 12 pixels (0.67). Both are things of the same class: never merged.
    mask_cls = log_probs([0.9, 0.05, 0.05], [0.8, 0.1, 0.1])
    mask_pred = masks(4, 4, (slice(0, 2), slice(0, 4)), (slice(1, 4), slice(0, 4)))
    kwargs = dict(num_classes=2, thing_ids=[0], object_mask_threshold=0.0)

    seg, info = panoptic_inference(mask_cls, mask_pred, overlap_threshold=0.8, **kwargs)
    assert seg[:2].eq(1).all() and seg[2:].eq(0).all()
    assert [s["id"] for s in info] == [1]

    seg, info = panoptic_inference(mask_cls, mask_pred, overlap_threshold=0.6, **kwargs)
    assert seg[:2].eq(1).all() and seg[2:].eq(2).all()
    assert info == [
        {"id": 1, "isthing": True, "category_id": 0},
        {"id": 2, "isthing": True, "category_id": 0},
    ]

    kwargs["object_mask_threshold"] = 0.85  # drops q1 before merging: no overlap left to judge
    seg, info = panoptic_inference(mask_cls, mask_pred, overlap_threshold=0.8, **kwargs)
    assert [s["id"] for s in info] == [1] and seg[2:].eq(0).all()

    with pytest.raises(ValueError, match="num_classes"):
        panoptic_inference(
            mask_cls,
            mask_pred,
            num_classes=3,
            thing_ids=[0],
            object_mask_threshold=0.0,
            overlap_threshold=0.8,
        )


def test_instance_inference_by_hand():
    mask_cls = log_probs([0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4])  # K = 2, thing = class 0
    mask_pred = torch.full((3, 4, 5), -3.0)
    mask_pred[0, 1:3, 1:4] = 2.0  # 6 px at sigmoid(2)
    mask_pred[1, 0, :] = 1.0
    mask_pred[1, 0, 0] = 3.0  # 5 px, mean of sigmoid(1) x4 and sigmoid(3)
    mask_pred[2, 3, 4] = 0.5  # 1 px
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    mask_score = [sig(2), (4 * sig(1) + sig(3)) / 5, sig(0.5)]
    probs = [[0.6, 0.3], [0.2, 0.7], [0.5, 0.1]]

    res = instance_inference(mask_cls, mask_pred, test_topk_per_image=3, thing_ids={0}, panoptic_on=False)
    # top-3 (query, class) pairs by class probability: (1, 1) 0.7, (0, 0) 0.6, (2, 0) 0.5
    got = sorted(zip(res.pred_classes.tolist(), res.scores.tolist()), key=lambda x: -x[1])
    expected = sorted(
        [
            (1, probs[1][1] * mask_score[1]),
            (0, probs[0][0] * mask_score[0]),
            (0, probs[2][0] * mask_score[2]),
        ],
        key=lambda x: -x[1],
    )
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)
    assert res.image_size == (4, 5) and res.pred_masks.shape == (3, 4, 5)

    res = instance_inference(mask_cls, mask_pred, test_topk_per_image=3, thing_ids={0}, panoptic_on=True)
    assert res.pred_classes.tolist() == [0, 0]
    order = res.scores.argsort(descending=True)
    assert res.scores[order].tolist() == pytest.approx([0.6 * mask_score[0], 0.5 * mask_score[2]], rel=1e-5)
    boxes = res.pred_boxes.tensor[order].tolist()
    assert boxes == [[1.0, 1.0, 4.0, 3.0], [4.0, 3.0, 5.0, 4.0]]  # x0, y0, x1, y1 (exclusive)
    torch.testing.assert_close(res.pred_masks[order[0]], (mask_pred[0] > 0).float())
