import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_sem_seg_head

from odise_ext.dense.heads import (
    build_depth_head,
    build_pose_head,
    build_refer_decoder,
    decode_heatmaps,
    flip_heatmaps,
    flip_test_average,
)
from odise_ext.dense.heads.pose_head import TopDownHeatmapHead

from conftest import make_cfg

CHANNELS = {"res3": 8, "res4": 12, "res5": 16, "res6": 16}
STRIDES = {"res3": 8, "res4": 16, "res5": 32, "res6": 64}


def _input_shape(channels=CHANNELS):
    return {k: ShapeSpec(channels=c, stride=STRIDES[k]) for k, c in channels.items()}


def _features(h, w, batch=2, channels=CHANNELS, seed=0):
    """Feature maps of size ceil(image / stride) for an image of size (h, w)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, c in channels.items():
        s = STRIDES[name]
        out[name] = torch.randn(batch, c, math.ceil(h / s), math.ceil(w / s), generator=g)
    return out


def _cfg():
    cfg = make_cfg()
    d = cfg.MODEL.DEPTH_HEAD
    d.FUSE_DIM, d.GN_GROUPS, d.DECONV_FILTERS, d.HIDDEN_DIM = 16, 4, [8, 8, 8], 8
    u = cfg.MODEL.UPER_HEAD
    u.CHANNELS, u.AUX_CHANNELS, u.POOL_SCALES = 8, 8, [1, 2, 3]
    r = cfg.MODEL.REFER_HEAD
    r.HIDDEN_DIM = 8
    p = cfg.MODEL.POSE_HEAD
    p.NUM_KEYPOINTS, p.DECONV_FILTERS, p.FLIP_PAIRS = 5, [8, 8, 8], [[1, 2], [3, 4]]
    return cfg


def _assert_all_grads(module):
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- depth


def test_depth_head_shapes_range_and_gradients():
    cfg = _cfg()
    cfg.MODEL.DEPTH_HEAD.MAX_DEPTH = 7.5
    head = build_depth_head(cfg, _input_shape())
    head.train()
    feats = _features(64, 128)  # non-square, multiple of 64
    target = torch.rand(2, 64, 128) * 7 + 0.1
    target[:, :5] = 0  # invalid rows
    depth, losses = head(feats, targets=target)
    assert depth.shape == (2, 64, 128)
    assert (depth > 0).all() and (depth < 7.5).all()
    # Near-zero decoder initialisation → depth ≈ max_depth / 2 at the start (VPD).
    assert (depth - 3.75).abs().max() < 0.1
    assert set(losses) == {"loss_depth"} and torch.isfinite(losses["loss_depth"])
    losses["loss_depth"].backward()
    _assert_all_grads(head)


def test_depth_head_crops_to_unpadded_image():
    head = build_depth_head(_cfg(), _input_shape()).eval()
    feats = _features(70, 100, batch=1)  # stride-32 grid 3x4 → decoded 96x128
    with torch.no_grad():
        full, _ = head(feats, image_size=(96, 128))  # the same 3x4 fused grid
        cropped, losses = head(feats, image_size=(70, 100))
    assert full.shape == (1, 96, 128) and cropped.shape == (1, 70, 100) and losses == {}
    assert torch.equal(cropped, full[:, :70, :100])
    with pytest.raises(ValueError, match="smaller than"):
        head(feats, image_size=(100, 100))
    with pytest.raises(ValueError, match="needs image_size"):
        head(feats)


def test_depth_head_config_sizes_and_checks():
    cfg = _cfg()
    cfg.MODEL.DEPTH_HEAD.DECONV_FILTERS = [8, 4]
    cfg.MODEL.DEPTH_HEAD.DECONV_KERNELS = [4, 3]
    head = build_depth_head(cfg, _input_shape()).eval()
    with torch.no_grad():  # the decoded size itself, not cropped to an image
        depth = head.decode(head.fuse(_features(64, 192, batch=1)))
    # stride 32 → two ×2 deconvs → two ×2 upsamples: stride 2
    assert depth.shape == (1, 32, 96)
    assert head.out_layer[0].out_channels == 16 and head.conv_layers.out_channels == 8
    bad = _input_shape()
    bad["res6"] = ShapeSpec(channels=16, stride=32)
    with pytest.raises(ValueError, match="1:2:4:8"):
        build_depth_head(cfg, bad)


# ----------------------------------------------------------------------------- UPerNet / FPN


def _seg_cfg(name):
    cfg = _cfg()
    s = cfg.MODEL.SEM_SEG_HEAD
    s.NAME, s.IN_FEATURES, s.NUM_CLASSES, s.NORM = name, list(CHANNELS), 5, "BN"
    s.CONVS_DIM, s.COMMON_STRIDE = 8, 8
    return cfg


def test_uper_head_training_losses_and_gradients():
    head = build_sem_seg_head(_seg_cfg("UPerHead"), _input_shape())
    head.train()
    feats = _features(64, 128)
    targets = torch.randint(0, 5, (2, 64, 128))
    targets[:, :4] = 255
    none, losses = head(feats, targets)
    assert none is None
    assert set(losses) == {"loss_sem_seg", "loss_lovasz", "loss_sem_seg_aux"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    _assert_all_grads(head)


def test_uper_head_inference_shape_and_options():
    cfg = _seg_cfg("UPerHead")
    cfg.MODEL.UPER_HEAD.AUX_IN_FEATURE = ""
    cfg.MODEL.UPER_HEAD.LOVASZ_WEIGHT = 0.0
    head = build_sem_seg_head(cfg, _input_shape())
    assert head.aux_head is None
    head.train()
    _, losses = head(_features(64, 128), torch.randint(0, 5, (2, 64, 128)))
    assert set(losses) == {"loss_sem_seg"}
    head.eval()
    with torch.no_grad():
        logits, empty = head(_features(64, 192, batch=1))
    assert logits.shape == (1, 5, 64, 192) and empty == {}


# ----------------------------------------------------------------------------- referring


def test_refer_decoder_shapes_and_gradients():
    head = build_refer_decoder(_cfg(), _input_shape())
    head.train()
    feats = _features(64, 128)
    targets = (torch.rand(2, 64, 128) > 0.5).long()
    logits, losses = head(feats, targets=targets)
    assert logits.shape == (2, 2, 64, 128) and set(losses) == {"loss_refer"}
    losses["loss_refer"].backward()
    _assert_all_grads(head)
    head.eval()
    with torch.no_grad():
        a, empty = head(feats)
    assert a.shape == (2, 2, 64, 128) and empty == {}


def test_refer_decoder_weighted_loss():
    head = build_refer_decoder(_cfg(), _input_shape()).eval()
    feats = _features(64, 64, batch=1)
    targets = torch.zeros(1, 64, 64, dtype=torch.long)
    targets[:, :10] = 1
    with torch.no_grad():
        logits, losses = head(feats, targets=targets)
    logp = logits.log_softmax(1)[0]
    w = torch.where(targets[0] == 1, 1.1, 0.9)
    nll = -torch.where(targets[0] == 1, logp[1], logp[0])
    assert losses["loss_refer"].item() == pytest.approx(((w * nll).sum() / w.sum()).item(), 1e-5)
    with pytest.raises(ValueError, match="binary"):
        head(feats, targets=targets * 2)


# ----------------------------------------------------------------------------- pose


def test_pose_head_shapes_gradients_and_loss():
    head = build_pose_head(_cfg(), _input_shape())
    head.train()
    feats = _features(64, 96)  # stride-32 map 2x3 → heatmaps 16x24
    targets = torch.rand(2, 5, 16, 24)
    weights = torch.tensor([[1.0, 1, 0, 1, 1], [1, 1, 1, 1, 0]])
    heatmaps, losses = head(feats, targets, weights)
    assert heatmaps.shape == (2, 5, 16, 24)
    losses["loss_keypoint"].backward()
    _assert_all_grads(head)

    pred = torch.ones(1, 2, 3, 3)
    target = torch.zeros(1, 2, 3, 3)
    loss = TopDownHeatmapHead.heatmap_loss(pred, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(0.25)  # 0.5 * (9 ones + 9 zeros) / 18


def test_decode_hand_placed_peak():
    hm = torch.zeros(1, 3, 6, 8)
    hm[0, 0, 3, 5] = 1.0
    hm[0, 0, 3, 6], hm[0, 0, 3, 4] = 0.5, 0.2  # right > left  → x + 0.25
    hm[0, 0, 2, 5], hm[0, 0, 4, 5] = 0.3, 0.1  # up > down     → y - 0.25
    hm[0, 1, 0, 7] = 2.0  # corner: no neighbours on both sides → no shift
    hm[0, 1, 1, 7] = 1.0
    hm[0, 2, 2, 2] = 0.7  # symmetric neighbours (all 0) → no shift
    coords, scores = decode_heatmaps(hm)
    assert coords[0].tolist() == [[5.25, 2.75], [7.0, 0.0], [2.0, 2.0]]
    assert scores[0].tolist() == pytest.approx([1.0, 2.0, 0.7])


def test_flip_heatmaps_and_flip_test():
    pairs = [[1, 2], [3, 4]]
    hm = torch.zeros(1, 5, 4, 6)
    hm[0, 1, 2, 1] = 1.0  # left keypoint at x=1
    flipped = flip_heatmaps(hm, pairs)
    coords, _ = decode_heatmaps(flipped)
    assert coords[0, 2].tolist() == [4.0, 2.0]  # now the right keypoint at x = 6-1-1
    assert torch.equal(flip_heatmaps(flipped, pairs), hm)

    torch.manual_seed(0)
    h = torch.rand(2, 5, 4, 6)
    # A perfectly flip-equivariant model: averaging without shift returns the heatmaps.
    assert torch.allclose(flip_test_average(h, flip_heatmaps(h, pairs), pairs, shift=False), h)
    # With the shift the flipped-back map moves one pixel right.
    peak = torch.zeros(1, 5, 4, 6)
    peak[0, 0, 1, 2] = 1.0
    avg = flip_test_average(peak, flip_heatmaps(peak, pairs), pairs, shift=True)
    assert avg[0, 0, 1, 2] == 0.5 and avg[0, 0, 1, 3] == 0.5 and avg.sum() == 1.0
    with pytest.raises(ValueError, match="invalid"):
        flip_heatmaps(h, [[1, 5]])
