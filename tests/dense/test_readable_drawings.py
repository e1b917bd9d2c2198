"""Drawings a person can read: enlarged to >= 512 px on the long side, labels inside the image
and never overlapping, one labelled colour bar per depth map, pose boxes labelled as persons."""
import itertools

import numpy as np
import pytest
import torch
from detectron2.data import Metadata
from detectron2.structures import Boxes, Instances

from odise_ext.dense import visualization as vis
from odise_ext.dense.depth_vis import colorbar_labels, depth_colorbar
from odise_ext.utils.labels import boxes_overlap, place_labels
from odise_ext.utils.visualization import (
    display_factor, draw_panoptic, enlarge_image, headed_panels, vocabulary_metadata, with_heading,
)

H, W = 64, 96  # a tiny config's input: enlarged x6 (ceil(512 / 96)) to 384 x 576


def _image(h=H, w=W, seed=0):
    return np.random.RandomState(seed).randint(0, 255, (h, w, 3)).astype(np.uint8)


# ------------------------------------------------------------------------------ label placement
def test_one_label_is_centred_on_its_anchor():
    assert place_labels([(50, 40)], [(20, 10)], 100, 80) == [(40, 35, 60, 45)]


def test_labels_at_the_border_are_moved_inside():
    boxes = place_labels([(0, 0), (100, 80), (-30, 200)], [(20, 10), (30, 12), (10, 10)], 100, 80)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 80
    assert boxes[0] == (0, 0, 20, 10) and boxes[1] == (70, 68, 100, 80)


def test_crowded_labels_are_stacked_or_skipped_never_overlapping():
    rng = np.random.RandomState(1)
    anchors = [tuple(a) for a in rng.uniform(-10, 110, (40, 2))] + [(50, 50)] * 10
    sizes = [tuple(s) for s in rng.randint(5, 40, (50, 2))]
    boxes = place_labels(anchors, sizes, 100, 100)
    kept = [b for b in boxes if b is not None]
    assert 5 < len(kept) < 50  # some stacked, some skipped
    for x0, y0, x1, y1 in kept:
        assert 0 <= x0 and 0 <= y0 and x1 <= 100 and y1 <= 100
    for a, b in itertools.combinations(kept, 2):
        assert not boxes_overlap(a, b), (a, b)
    for box, (w, h) in zip(boxes, sizes):  # placed boxes keep their label's size
        assert box is None or (box[2] - box[0], box[3] - box[1]) == (w, h)


def test_same_anchor_labels_stack_below_then_above():
    boxes = place_labels([(50, 50)] * 3, [(20, 10)] * 3, 100, 100)
    assert [b[1] for b in boxes] == [45, 55, 35]


def test_label_larger_than_the_image_is_skipped():
    assert place_labels([(5, 5)], [(200, 10)], 100, 100) == [None]


# ------------------------------------------------------------------------------- display size
@pytest.mark.parametrize("h, w, factor", [(64, 96, 6), (128, 128, 4), (512, 300, 1), (600, 800, 1), (1, 1, 512)])
def test_display_factor_reaches_512_on_the_long_side(h, w, factor):
    assert display_factor(h, w) == factor and max(h, w) * factor >= 512


def _semantic():
    labels = np.zeros((H, W), np.int64)
    labels[:, W // 2:] = 1
    labels[10:30, 10:30] = 2
    return labels


def test_every_drawing_is_enlarged_to_512():
    rgb = _image()
    meta = vis.semantic_metadata(["sky", "grass", "circle"])
    assert vis.draw_sem_seg(rgb, _semantic(), meta).shape == (384, 576, 3)
    assert vis.draw_ref_mask(rgb, _semantic() == 2, "the circle").shape == (384, 576, 3)
    info = [{"id": i, "category_id": i, "isthing": i == 2} for i in range(3)]
    assert draw_panoptic(rgb, _semantic(), info, vocabulary_metadata(["sky", "grass", "circle"])).shape == (384, 576, 3)
    depth = vis.draw_depth(rgb, np.linspace(1, 5, H * W).reshape(H, W))
    assert depth.shape[1:] == (576, 3) and depth.shape[0] > 384


def test_masks_are_enlarged_nearest_and_the_image_bilinear():
    rgb = _image()
    labels = _semantic()
    drawn = vis.draw_sem_seg(rgb, labels, vis.semantic_metadata(["a", "b", "c"]), alpha=1.0)
    # alpha 1: each region is its colour exactly, away from outlines and labels; the enlarged
    # region boundary is at 6 x the original column (nearest), not blurred
    colors = vis.semantic_metadata(["a", "b", "c"]).stuff_colors
    assert (drawn[300, 6 * (W // 2) - 2] == colors[0]).all() and (drawn[300, 6 * (W // 2) + 1] == colors[1]).all()
    ramp = np.repeat(np.linspace(0, 250, W)[None, :, None], H, 0).repeat(3, 2).astype(np.uint8)
    big = enlarge_image(ramp, 6)
    assert big.shape == (384, 576, 3) and np.abs(big[2::6, 2::6].astype(int) - ramp).max() <= 2
    nearest = ramp.repeat(6, 0).repeat(6, 1)
    assert len(np.unique(big[10, 6:12, 0])) > 1 and len(np.unique(nearest[10, 6:12, 0])) == 1  # interpolated


def test_large_images_are_drawn_at_their_size():
    rgb = _image(600, 800)
    labels = np.zeros((600, 800), np.int64)
    assert vis.draw_sem_seg(rgb, labels, vis.semantic_metadata(["a"])).shape == (600, 800, 3)


# ------------------------------------------------------------------------------ depth colour bar
def test_constant_depth_has_one_colour_bar_label():
    assert colorbar_labels(25.0, 25.0) == [(0.5, "constant depth 25.00 m")]
    assert colorbar_labels(25.0, 25.001) == [(0.5, "constant depth 25.00 m")]
    assert [t for _, t in colorbar_labels(1.0, 3.0)] == ["1.00 m", "2.00 m", "3.00 m"]


def _ink_columns(rows):
    """Columns of a white-background strip holding dark (text) pixels."""
    return np.nonzero((rows.max(axis=2) < 128).any(axis=0))[0]


def test_constant_depth_map_prints_its_label_once_in_the_middle():
    bar = depth_colorbar(25.0, 25.0, 576)
    cols = _ink_columns(bar[16:])
    assert len(cols) and cols.min() > 576 // 4 and cols.max() < 3 * 576 // 4
    ranged = _ink_columns(depth_colorbar(1.0, 3.0, 576)[16:])
    assert ranged.min() < 576 // 8 and ranged.max() > 7 * 576 // 8  # both ends labelled


def test_depth_drawing_has_exactly_one_colour_bar():
    depth = np.linspace(1, 5, H * W).reshape(H, W)
    drawn = vis.draw_depth(_image(), depth)
    below = drawn[384:]
    # one 16-row gradient strip under the map, then white with text: no second bar
    gradient_rows = [r for r in range(below.shape[0]) if np.abs(np.diff(below[r].astype(int), axis=0)).sum() > 0
                     and (below[r] != 255).all()]
    assert gradient_rows == list(range(16))


# ------------------------------------------------------------------------------------------ pose
def _pose_instances():
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor([[4.0, 4.0, 40.0, 60.0], [50.0, 10.0, 90.0, 60.0]]))
    kps = torch.zeros(2, 3, 3)
    kps[0, :, :2] = torch.tensor([[10.0, 10.0], [20.0, 30.0], [30.0, 50.0]])
    kps[1, :, :2] = torch.tensor([[60.0, 20.0], [70.0, 30.0], [80.0, 50.0]])
    kps[..., 2] = 1.0
    inst.pred_keypoints = kps
    inst.scores = torch.zeros(2)
    inst.pred_classes = torch.zeros(2, dtype=torch.long)
    return inst


def test_pose_boxes_are_persons_whatever_the_dataset_classes():
    meta = dict(keypoint_names=["a", "b", "c"], keypoint_connection_rules=[("a", "b", (255, 0, 0))])
    rgb = np.full((H, W, 3), 128, np.uint8)
    with_star = vis.draw_keypoints(rgb, _pose_instances(), Metadata(name="x", thing_classes=["star"], **meta))
    without = vis.draw_keypoints(rgb, _pose_instances(), Metadata(name="y", **meta))
    assert with_star.shape == (384, 576, 3)
    np.testing.assert_array_equal(with_star, without)  # labels are "person i", not class names / scores


def test_pose_keypoints_are_drawn_where_predicted():
    rgb = np.full((H, W, 3), 128, np.uint8)
    drawn = vis.draw_keypoints(rgb, _pose_instances(), Metadata(name="z", keypoint_names=["a", "b", "c"]))
    for x, y in ((20, 30), (70, 30), (80, 50)):
        cx, cy = int((x + 0.5) * 6 - 0.5), int((y + 0.5) * 6 - 0.5)
        assert (drawn[cy, cx] != 128).any(), (x, y)
    hidden = _pose_instances()
    hidden.pred_keypoints[..., 2] = 0.0  # below the threshold: not drawn
    undrawn = vis.draw_keypoints(rgb, hidden, Metadata(name="z", keypoint_names=["a", "b", "c"]))
    assert (undrawn[int(30.5 * 6), int(20.5 * 6)] == 128).all()


# ---------------------------------------------------------------------------------------- panels
def test_headings_sit_in_a_white_band_above_each_panel():
    a, b = np.zeros((100, 80, 3), np.uint8), np.zeros((100, 60, 3), np.uint8)
    headed = with_heading(a, "image")
    band = headed.shape[0] - 100
    assert headed.shape[1:] == (80, 3) and 10 < band < 60
    assert (headed[band:] == 0).all() and (headed[:band] < 128).any() and (headed[:band] == 255).mean() > 0.6
    panels = headed_panels([(a, "image"), (b, "prediction")])
    assert panels.shape == (100 + band, 80 + 4 + 60, 3)
