"""Sliding windows: boxes as ODISE defines them, cutting/merging against naive loops."""
import pytest
import torch
import torch.nn.functional as F

from odise_ext.odise.windows import cut_windows, merge_windows, window_boxes


def test_boxes_by_hand():
    # 1024x768 image, 512 windows: rows [0,512] and [256,768] (shifted), cols [0,512], [512,1024].
    assert window_boxes(768, 1024, 512) == [
        (0, 512, 0, 512),
        (0, 512, 512, 1024),
        (256, 768, 0, 512),
        (256, 768, 512, 1024),
    ]
    # Short side below the window size: side = short side, one row, shifted last column.
    assert window_boxes(384, 832, 512) == [(0, 384, 0, 384), (0, 384, 384, 768), (0, 384, 448, 832)]
    assert window_boxes(1024, 1024, 512) == [
        (0, 512, 0, 512),
        (0, 512, 512, 1024),
        (512, 1024, 0, 512),
        (512, 1024, 512, 1024),
    ]
    assert window_boxes(64, 64, 512) == [(0, 64, 0, 64)]


def test_boxes_cover_image_with_square_windows():
    for h, w in [(96, 128), (640, 448), (1088, 1920)]:
        boxes = window_boxes(h, w, 512)
        side = min(512, h, w)
        covered = torch.zeros(h, w, dtype=torch.bool)
        for y1, y2, x1, x2 in boxes:
            assert y2 - y1 == side and x2 - x1 == side
            assert 0 <= y1 and y2 <= h and 0 <= x1 and x2 <= w
            covered[y1:y2, x1:x2] = True
        assert covered.all()


def test_bad_geometry_is_an_error():
    with pytest.raises(ValueError, match="Invalid window geometry"):
        window_boxes(0, 64, 64)


def test_cut_windows_matches_per_window_resize():
    images = torch.randn(2, 3, 96, 128)
    boxes = window_boxes(96, 128, 64)
    out = cut_windows(images, boxes, 32)
    assert out.shape == (2 * len(boxes), 3, 32, 32)
    for b in range(2):
        for k, (y1, y2, x1, x2) in enumerate(boxes):
            ref = F.interpolate(
                images[b : b + 1, :, y1:y2, x1:x2],
                size=(32, 32),
                mode="bicubic",
                align_corners=False,
            )
            torch.testing.assert_close(out[b * len(boxes) + k], ref[0])
    # No resize when the window already has the target size (and no clamping either way).
    same = cut_windows(images * 10, boxes, 64)
    torch.testing.assert_close(same[1], images[0, :, 0:64, 64:128] * 10)


def test_merge_windows_averages_overlaps_like_a_naive_loop():
    h, w, stride = 96, 128, 8
    boxes = window_boxes(h, w, 64)
    feats = torch.randn(2 * len(boxes), 5, 64 // stride, 64 // stride, requires_grad=True)
    out = merge_windows(feats, boxes, stride, (h, w))

    ref = torch.zeros(2, 5, h // stride, w // stride)
    for b in range(2):
        for i in range(h // stride):
            for j in range(w // stride):
                vals = [
                    feats[b * len(boxes) + k, :, i - y1 // stride, j - x1 // stride]
                    for k, (y1, y2, x1, x2) in enumerate(boxes)
                    if y1 // stride <= i < y2 // stride and x1 // stride <= j < x2 // stride
                ]
                ref[b, :, i, j] = torch.stack(vals).mean(0)
    torch.testing.assert_close(out, ref.detach())
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_cut_then_merge_round_trip():
    images = torch.randn(1, 4, 96, 160)
    boxes = window_boxes(96, 160, 64)
    windows = cut_windows(images, boxes, 64)
    torch.testing.assert_close(merge_windows(windows, boxes, 1, (96, 160)), images)


def test_merge_rejects_indivisible_stride():
    boxes = window_boxes(96, 96, 64)  # windows start at 32
    with pytest.raises(ValueError, match="divisible by stride"):
        merge_windows(torch.zeros(len(boxes), 1, 1, 1), boxes, 64, (96, 96))
