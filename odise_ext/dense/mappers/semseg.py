"""Training mapper of VPD / Meta-Prompts semantic segmentation (mmseg's ADE20K / Cityscapes
recipe): random rescale of the short side within ``DATA.SEM_SEG.SCALE_RANGE`` x ``BASE_SIZE``,
random crop ``INPUT.CROP.SIZE`` in which no class covers more than
``DATA.SEM_SEG.CAT_MAX_AREA`` (0.75), horizontal flip. Padding to the backbone's size
divisibility (labels with the ignore value) happens in the model.

Test time: :class:`SemSegSlideTestMapper` (``DATA.TEST_MAPPER "SemSegSlideTestMapper"``) is mmseg's
test pipeline (VPD / Meta-Prompts ADE20K); ``DATA.TEST_MAPPER ""`` is detectron2's
``DatasetMapper`` (PIL decoding and PIL bilinear resizing, which antialiases when shrinking).
Labels are read with their exact values (16-bit too: ``odise_ext.data.image_io``)."""
import copy

import cv2
import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ...data.build import DATASET_MAPPER_REGISTRY
from ...data.dataset_mapper import ImageIODatasetMapper, describe_record
from ...data.image_io import UndecodableImageError

__all__ = ["SemSegMapper", "SemSegSlideTestMapper", "mmseg_rescale_size"]


@DATASET_MAPPER_REGISTRY.register()
class SemSegMapper(ImageIODatasetMapper):
    """detectron2's ``DatasetMapper`` with VPD's segmentation augmentations.

    Output: ``image`` uint8 [3, h, w], ``sem_seg`` int64 [h, w] (plus the input's fields).
    """

    @configurable
    def __init__(self, is_train: bool = True, **kwargs):
        super().__init__(is_train, **kwargs)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        args = super().from_config(cfg, is_train)
        if not is_train:
            return args
        d = cfg.DATA.SEM_SEG
        lo, hi = d.SCALE_RANGE
        if not 0 < lo <= hi:
            raise ValueError(f"DATA.SEM_SEG.SCALE_RANGE must be 0 < lo <= hi, got {[lo, hi]}")
        base = d.BASE_SIZE
        augs = [T.ResizeShortestEdge((int(base * lo), int(base * hi)), int(4 * base * hi), "range")]
        if cfg.INPUT.CROP.ENABLED:
            augs.append(
                T.RandomCrop_CategoryAreaConstraint(
                    cfg.INPUT.CROP.TYPE,
                    cfg.INPUT.CROP.SIZE,
                    d.CAT_MAX_AREA,
                    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
                )
            )
        augs.append(T.RandomFlip())
        args["augmentations"] = augs
        args["recompute_boxes"] = False
        return args


def mmseg_rescale_size(height: int, width: int, short: int, long: int):
    """mmcv ``imrescale`` size (``Resize(img_scale=(long, short), keep_ratio=True)``): the largest
    scale with short side <= ``short`` and long side <= ``long``; sides rounded half up.
    Returns (new height, new width)."""
    scale = min(long / max(height, width), short / min(height, width))
    return int(height * float(scale) + 0.5), int(width * float(scale) + 0.5)


@DATASET_MAPPER_REGISTRY.register()
class SemSegSlideTestMapper:
    """mmseg's segmentation test pipeline: decode with OpenCV (BGR, EXIF-oriented as mmcv's
    ``imfrombytes``), rescale to :func:`mmseg_rescale_size` (``INPUT.MIN_SIZE_TEST`` /
    ``MAX_SIZE_TEST``, VPD: 512 / 2048) with OpenCV bilinear (no antialiasing), no padding.

    Output: the dataset dict with ``image`` uint8 [3, h, w] in ``INPUT.FORMAT`` and ``height`` /
    ``width`` of the original image (the prediction is resized back to it); no ``sem_seg``.
    """

    @configurable
    def __init__(self, *, short_size: int, long_size: int, image_format: str):
        """
        Args:
            short_size, long_size: bounds of the rescaled short / long side.
            image_format: "RGB" or "BGR", the channel order of ``image``.
        """
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"SemSegSlideTestMapper: INPUT.FORMAT must be RGB or BGR, got {image_format!r}")
        if not 0 < short_size <= long_size:
            raise ValueError(f"SemSegSlideTestMapper: need 0 < MIN_SIZE_TEST <= MAX_SIZE_TEST, got {short_size}, {long_size}")
        self.short_size, self.long_size, self.image_format = int(short_size), int(long_size), image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = False):
        if is_train:
            raise ValueError("SemSegSlideTestMapper is a test-time mapper (DATA.TEST_MAPPER)")
        return {"short_size": cfg.INPUT.MIN_SIZE_TEST, "long_size": cfg.INPUT.MAX_SIZE_TEST,
                "image_format": cfg.INPUT.FORMAT}

    def __call__(self, dataset_dict: dict) -> dict:
        d = copy.deepcopy(dataset_dict)
        with open(d["file_name"], "rb") as f:
            image = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise UndecodableImageError(f"image '{d['file_name']}' cannot be decoded by OpenCV [{describe_record(d)}]")
        utils.check_image_size(d, image)
        h, w = image.shape[:2]
        nh, nw = mmseg_rescale_size(h, w, self.short_size, self.long_size)
        if (nh, nw) != (h, w):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        if self.image_format == "RGB":
            image = image[:, :, ::-1]
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        d.pop("sem_seg_file_name", None)
        d.pop("annotations", None)
        return d
