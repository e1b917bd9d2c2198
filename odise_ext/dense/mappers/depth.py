"""Mapper of the depth datasets (NYUv2, KITTI, the embedded shapes world).

Dataset dicts carry ``file_name``, ``depth_file_name`` (a 16-bit PNG) and ``depth_scale``
(PNG value / scale = metres; 0 = no measurement). Output:

- ``image``: uint8 [3, h, w] (resized / cropped / flipped in training);
- ``depth``: float32 [h', w'] metres; in training aligned with ``image`` (nearest-neighbour
  resizing so no depth is invented), at test time the full-resolution ground truth, which the
  model's prediction is resized to (``height``/``width`` are set to its size).

KITTI's benchmark crop (352 x 1216, bottom-centred) is applied to image and depth first when
``DATA.DEPTH.KB_CROP`` is set; ground truth >= ``DATA.DEPTH.MAX_DEPTH`` is invalid.
"""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ...data.build import DATASET_MAPPER_REGISTRY
from ...data.dataset_mapper import describe_record, read_record_image
from ...data.image_io import read_label_map

__all__ = ["DepthMapper", "read_depth", "kb_crop"]

_KB_HEIGHT, _KB_WIDTH = 352, 1216


def read_depth(path: str, scale: float) -> np.ndarray:
    """[H, W] float32 metres from a depth PNG (value / scale; 16-bit values exact)."""
    depth = read_label_map(path, "depth PNG", float_ok=True).astype(np.float32)
    if scale <= 0:
        raise ValueError(f"{path}: depth_scale must be > 0, got {scale}")
    return depth / float(scale)


def kb_crop(array: np.ndarray) -> np.ndarray:
    """KITTI benchmark crop: the bottom 352 rows, centred 1216 columns."""
    h, w = array.shape[:2]
    if h < _KB_HEIGHT or w < _KB_WIDTH:
        raise ValueError(f"KB crop needs images of at least {_KB_HEIGHT}x{_KB_WIDTH}, got {h}x{w}")
    top, left = h - _KB_HEIGHT, (w - _KB_WIDTH) // 2
    return array[top : top + _KB_HEIGHT, left : left + _KB_WIDTH]


@DATASET_MAPPER_REGISTRY.register()
class DepthMapper:
    @configurable
    def __init__(self, *, is_train: bool, augmentations, image_format: str, max_depth: float, use_kb_crop: bool):
        """
        Args:
            is_train: training (augment; depth follows the image) or test (full-res depth).
            augmentations: detectron2 augmentations (resize, crop, flip).
            image_format: channel order of the returned image.
            max_depth: ground truth >= this is set to 0 (invalid).
            use_kb_crop: apply KITTI's benchmark crop first.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.max_depth = float(max_depth)
        self.use_kb_crop = use_kb_crop

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        augs = utils.build_augmentation(cfg, is_train)  # ResizeShortestEdge (+ RandomFlip in training)
        crop = cfg.DATA.DEPTH.CROP_SIZE
        if is_train and crop:
            augs.insert(1, T.RandomCrop("absolute", tuple(crop)))
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "max_depth": cfg.DATA.DEPTH.MAX_DEPTH,
            "use_kb_crop": cfg.DATA.DEPTH.KB_CROP,
        }

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        for key in ("file_name", "depth_file_name", "depth_scale"):
            if key not in d:
                raise ValueError(f"depth dataset dict {d.get('file_name', d)} has no '{key}'")
        image = read_record_image(d, self.image_format, check_size=False)
        try:
            depth = read_depth(d["depth_file_name"], d["depth_scale"])
        except ValueError as e:
            raise type(e)(f"{e} [{describe_record(d)}]") from None
        if depth.shape != image.shape[:2]:
            raise ValueError(f"{d['file_name']}: depth {depth.shape} and image {image.shape[:2]} differ in size")
        if self.use_kb_crop:
            image, depth = kb_crop(image), kb_crop(depth)
        depth = np.where(depth < self.max_depth, depth, 0.0).astype(np.float32)
        aug = T.AugInput(image, sem_seg=depth if self.is_train else None)
        self.augmentations(aug)
        d["image"] = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        if self.is_train:
            d["depth"] = torch.as_tensor(np.ascontiguousarray(aug.sem_seg), dtype=torch.float32)
        else:
            d["depth"] = torch.as_tensor(np.ascontiguousarray(depth))
            d["height"], d["width"] = depth.shape
        return d
