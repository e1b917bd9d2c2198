"""Drawing panoptic results with detectron2's Visualizer for any vocabulary, and small helpers
shared by the other drawing modules. detectron2's Visualizer needs OpenCV; it is imported only
where it is used."""
import numpy as np
import torch
from detectron2.data import Metadata

__all__ = ["class_palette", "vocabulary_metadata", "draw_panoptic", "side_by_side"]


def class_palette(num):
    """``num`` fixed pseudo-random RGB colours (the same for the same ``num``)."""
    rng = np.random.RandomState(0)
    return [tuple(int(c) for c in rng.randint(40, 255, size=3)) for _ in range(num)]


def vocabulary_metadata(names, colors=None):
    """Visualizer metadata for contiguous class ids 0..K-1 (things and stuff share the ids)."""
    names = list(names)
    if colors is None:
        colors = class_palette(len(names))
    # thing_classes and stuff_classes both index by contiguous id, so either lookup works.
    return Metadata(name="odise_ext_vocabulary", thing_classes=names, stuff_classes=names,
                    thing_colors=list(colors), stuff_colors=list(colors))


def draw_panoptic(image_rgb, panoptic_seg, segments_info, metadata):
    """image_rgb: uint8 [H, W, 3]; panoptic_seg: int tensor or array [H, W] (a model's output or
    a ground-truth id map); returns uint8 [H, W, 3]."""
    from detectron2.utils.visualizer import ColorMode, Visualizer

    vis = Visualizer(image_rgb, metadata, instance_mode=ColorMode.IMAGE)
    # detectron2's Visualizer calls torch.unique on the map: numpy id maps must become tensors
    seg = torch.as_tensor(np.asarray(panoptic_seg.cpu() if torch.is_tensor(panoptic_seg) else panoptic_seg))
    return vis.draw_panoptic_seg(seg, segments_info).get_image()


def side_by_side(*images, gap=4):
    """Concatenate uint8 images of equal height horizontally with a white gap."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] != h:
            pad = np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)
            im = np.concatenate([im, pad], 0)
        parts.append(im)
        if i < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, 1)
