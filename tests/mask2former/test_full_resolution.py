"""Row-chunked full-resolution post-processing equals the unchunked definition, and holds no
[Q, H, W] intermediate beyond its chunk budget."""

import random

import pytest
import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks
from torch.overrides import TorchFunctionMode

from odise_ext.mask2former.full_resolution import FullResolutionMasks
from odise_ext.mask2former.postprocessing import instance_inference, panoptic_inference, semantic_inference

# Output sizes with H + W > 128 (smaller outputs are always one chunk: PyTorch's CPU kernel for
# them is another one).
SIZES = [(97, 131), (150, 61), (203, 257), (64, 129)]  # odd, tall, up- and down-sampled
CHUNKS = [1, 131, 1000, 5000, 10**9]


def upsample(low, size):
    return F.interpolate(low[None], size=size, mode="bilinear", align_corners=False)[0]


def lows(q=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    for h, w in [(13, 17), (40, 33), (200, 250), (97, 131)]:
        yield torch.randn(q, h, w, generator=g) * 4


# ---- oracles: Mask2Former's definitions on the whole [Q, H, W] tensor ------------------------
def semantic_oracle(mask_cls, mask_pred):
    return torch.einsum("qc,qhw->chw", F.softmax(mask_cls, -1)[:, :-1], mask_pred.sigmoid())


def panoptic_oracle(mask_cls, mask_pred, num_classes, thing_ids, object_mask_threshold, overlap_threshold):
    scores, labels = F.softmax(mask_cls, -1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], mask_pred[keep].sigmoid()
    seg = torch.zeros(mask_pred.shape[-2:], dtype=torch.int32)
    info, stuff, current = [], {}, 0
    if cur_masks.shape[0] == 0:
        return seg, info
    ids = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
    for k in range(cur_classes.shape[0]):
        c = int(cur_classes[k])
        isthing = c in thing_ids
        mask = (ids == k) & (cur_masks[k] >= 0.5)
        area, orig = int((ids == k).sum()), int((cur_masks[k] >= 0.5).sum())
        if area > 0 and orig > 0 and int(mask.sum()) > 0 and area / orig >= overlap_threshold:
            if not isthing and c in stuff:
                seg[mask] = stuff[c]
                continue
            current += 1
            seg[mask] = current
            if not isthing:
                stuff[c] = current
            info.append({"id": current, "isthing": isthing, "category_id": c})
    return seg, info


def instance_oracle(mask_cls, mask_pred, topk, thing_ids, panoptic_on):
    q, k1 = mask_cls.shape
    scores = F.softmax(mask_cls, -1)[:, :-1]
    labels = torch.arange(k1 - 1).repeat(q)
    s, idx = scores.flatten().topk(min(topk, scores.numel()), sorted=False)
    lab, m = labels[idx], mask_pred[idx // (k1 - 1)]
    if panoptic_on:
        keep = torch.isin(lab, torch.tensor(sorted(thing_ids)))
        s, lab, m = s[keep], lab[keep], m[keep]
    binary = m > 0
    pm = binary.float()
    ms = (m.sigmoid() * pm).flatten(1).sum(1) / (pm.flatten(1).sum(1) + 1e-6)
    return pm, BitMasks(binary).get_bounding_boxes().tensor, s * ms, lab


# ---- interpolation ------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES + [(40, 250)])
def test_row_chunks_are_bitwise_the_full_interpolation(size):
    for low in lows():
        ref = upsample(low, size)
        for chunk in CHUNKS:
            m = FullResolutionMasks(low, size, chunk_pixels=chunk)
            parts = list(m.row_chunks())
            assert [p[0] for p in parts] == sorted({p[0] for p in parts}) and parts[0][0] == 0
            assert parts[-1][1] == size[0] and all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert all((r1 - r0) * size[1] <= max(chunk, size[1]) for r0, r1, _ in parts) or len(parts) == 1
            assert torch.equal(torch.cat([p[2] for p in parts], 1), ref), (low.shape, size, chunk)


def test_random_shapes_match_bitwise():
    rng = random.Random(7)
    g = torch.Generator().manual_seed(7)
    for _ in range(80):
        h, w, H, W = rng.randint(1, 48), rng.randint(1, 48), rng.randint(1, 260), rng.randint(1, 260)
        low = torch.randn(rng.randint(1, 4), h, w, generator=g) * 5
        m = FullResolutionMasks(low, (H, W), chunk_pixels=rng.randint(1, H * W))
        assert torch.equal(torch.cat([c for _, _, c in m.row_chunks()], 1), upsample(low, (H, W)))


def test_select_before_upsampling_changes_nothing():
    low = next(lows())
    m = FullResolutionMasks(low, (203, 257), chunk_pixels=3000)
    idx = torch.tensor([4, 0, 4, 2])
    got = torch.cat([c for _, _, c in m.select(idx).row_chunks()], 1)
    assert torch.equal(got, upsample(low, (203, 257))[idx])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"\[Q, h, w\]"):
        FullResolutionMasks(torch.zeros(2, 3), (4, 4))
    with pytest.raises(ValueError, match="chunk_pixels"):
        FullResolutionMasks(torch.zeros(1, 2, 3), (4, 4), chunk_pixels=0)
    with pytest.raises(TypeError, match="FullResolutionMasks"):
        semantic_inference(torch.zeros(1, 3), [[0.0]])


# ---- inference ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_chunked_inference_equals_the_definition(size):
    g = torch.Generator().manual_seed(size[0])
    for low in lows(q=8, seed=size[1]):
        mask_cls = torch.randn(8, 5, generator=g) * 3  # K = 4, things {0, 2}
        full = upsample(low, size)
        sem = semantic_oracle(mask_cls, full)
        pan = panoptic_oracle(mask_cls, full, 4, {0, 2}, 0.0, 0.5)
        for chunk in CHUNKS:
            masks = FullResolutionMasks(low, size, chunk_pixels=chunk)
            got = semantic_inference(mask_cls, masks)
            if masks.rows_per_chunk() >= size[0]:
                assert torch.equal(got, sem)
            else:  # the matrix product's blocking follows the chunk's width: ~1 ulp apart
                torch.testing.assert_close(got, sem, rtol=0, atol=1e-6)
            seg, info = panoptic_inference(mask_cls, masks, num_classes=4, thing_ids={0, 2},
                                           object_mask_threshold=0.0, overlap_threshold=0.5)
            assert info == pan[1] and torch.equal(seg, pan[0])
            for panoptic_on in (False, True):
                res = instance_inference(mask_cls, masks, test_topk_per_image=10, thing_ids={0, 2},
                                         panoptic_on=panoptic_on)
                pm, boxes, scores, labels = instance_oracle(mask_cls, full, 10, {0, 2}, panoptic_on)
                assert res.image_size == size
                assert torch.equal(res.pred_masks, pm) and torch.equal(res.pred_boxes.tensor, boxes)
                assert torch.equal(res.scores, scores) and torch.equal(res.pred_classes, labels)


def test_panoptic_segments_survive_chunking_with_stuff_merges_and_overlap_drops():
    # Hand-made: q0 stuff 1 top, q1 stuff 1 bottom (merged), q2 thing 0 covering rows 90..
    # with a lower score (loses most of its mask -> dropped at overlap 0.8), q3 void.
    low = torch.full((4, 20, 20), -6.0)
    low[0, :10], low[1, 10:], low[2, 9:], low[3] = 6.0, 6.0, 6.0, 6.0
    mask_cls = torch.tensor([[0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).log()
    size = (201, 149)
    pan = panoptic_oracle(mask_cls, upsample(low, size), 2, {0}, 0.0, 0.8)
    assert [s["category_id"] for s in pan[1]] == [1]
    for chunk in (1, 149 * 7, 10**9):
        seg, info = panoptic_inference(mask_cls, FullResolutionMasks(low, size, chunk_pixels=chunk), num_classes=2,
                                       thing_ids={0}, object_mask_threshold=0.0, overlap_threshold=0.8)
        assert info == pan[1] and torch.equal(seg, pan[0]) and seg.unique().tolist() == [0, 1]


class _LargestTensor(TorchFunctionMode):
    """Records the largest tensor any torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_largest_intermediate_is_bounded_by_the_chunk_not_the_image():
    q, k, size, chunk = 6, 2, (2000, 3000), 3000 * 40
    g = torch.Generator().manual_seed(0)
    low = torch.randn(q, 25, 38, generator=g) * 4
    mask_cls = torch.randn(q, k + 1, generator=g)
    masks = FullResolutionMasks(low, size, chunk_pixels=chunk)
    pixels = size[0] * size[1]
    # outputs: sem_seg [K, H, W]; panoptic [H, W] (+ its winner map); instances [1, H, W]
    bound = max(k * pixels, q * chunk)
    assert bound < q * pixels
    for run in (
        lambda: semantic_inference(mask_cls, masks),
        lambda: panoptic_inference(mask_cls, masks, num_classes=k, thing_ids={0},
                                   object_mask_threshold=0.0, overlap_threshold=0.8),
        lambda: instance_inference(mask_cls, masks, test_topk_per_image=1, thing_ids={0}, panoptic_on=False),
    ):
        with _LargestTensor() as spy:
            run()
        assert pixels <= spy.largest <= bound, spy.largest
    # the unchunked path does hold [Q, H, W]: the spy sees it
    with _LargestTensor() as spy:
        semantic_inference(mask_cls, FullResolutionMasks(low, size, chunk_pixels=pixels))
    assert spy.largest == q * pixels
