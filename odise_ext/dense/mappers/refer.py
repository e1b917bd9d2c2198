"""Mapper of the referring-segmentation datasets (RefCOCO / RefCOCO+ / RefCOCOg, the shapes world).

A dataset dict describes one referred object: ``file_name``, ``sentences`` (its referring
expressions; or a single ``sentence``) and ``annotations`` with the object's mask (polygons or
RLE). Output:

- ``image``: uint8 [3, h, w], resized to ``DATA.REFER.SIZE`` when set (VPD's
  test: 512 x 512, PIL bilinear, as here);
- ``sentence``: one expression (a random one in training, the first at test time — test splits
  are registered with one dict per sentence);
- ``ref_mask``: uint8 [h', w'] 0/1, aligned with ``image`` in training; at test time aligned
  with ``image`` too when ``eval_at_input_size`` (LAVT/VPD evaluate at the network input size,
  the GT resized by PIL nearest neighbour, as here), else at the original resolution;
- ``height``/``width``: the size the model resizes its prediction to (the evaluated size).

There is no flip augmentation: it would swap "left" and "right" in the expressions.
"""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.structures import PolygonMasks, polygons_to_bitmask
from pycocotools import mask as mask_util

from ...data.build import DATASET_MAPPER_REGISTRY
from ...data.dataset_mapper import read_record_image

__all__ = ["ReferMapper", "annotation_mask"]


def annotation_mask(annotations, height: int, width: int) -> np.ndarray:
    """Union of the annotations' masks (polygon lists or RLE dicts): [H, W] uint8 0/1."""
    out = np.zeros((height, width), dtype=np.uint8)
    for ann in annotations:
        seg = ann.get("segmentation")
        if seg is None:
            raise ValueError("referring annotation without 'segmentation'")
        if isinstance(seg, list):
            m = polygons_to_bitmask(PolygonMasks([seg]).polygons[0], height, width)
        elif isinstance(seg, dict):
            rle = seg if not isinstance(seg.get("counts"), list) else mask_util.frPyObjects(seg, height, width)
            m = mask_util.decode(rle)
        else:
            raise ValueError(f"unsupported segmentation format {type(seg).__name__}")
        if m.shape != (height, width):
            raise ValueError(f"annotation mask {m.shape} does not match the image {(height, width)}")
        out |= m.astype(np.uint8)
    return out


@DATASET_MAPPER_REGISTRY.register()
class ReferMapper:
    @configurable
    def __init__(self, *, is_train: bool, augmentations, image_format: str, seed=None, eval_at_input_size=False):
        """
        Args:
            is_train: pick a random sentence and align the mask with the image.
            augmentations: detectron2 augmentations (a resize).
            image_format: channel order of the returned image.
            seed: seeds the sentence choice (None: numpy's global RNG, re-seeded per worker).
            eval_at_input_size: at test time, return the GT resized with the image and ask for
                the prediction at that size (LAVT/VPD's evaluation protocol).
        """
        self.is_train = is_train
        self.eval_at_input_size = eval_at_input_size
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        # (None: numpy's global RNG, looked up when used: a module cannot be pickled to spawned workers)
        self._own_rng = np.random.RandomState(seed) if seed is not None else None

    @property
    def rng(self):
        return self._own_rng if self._own_rng is not None else np.random

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        size = cfg.DATA.REFER.SIZE
        augs = [T.Resize(tuple(size))] if size else []
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "eval_at_input_size": cfg.MODEL.REFER_HEAD.EVAL_AT_INPUT_SIZE,
        }

    def _sentence(self, d) -> str:
        if "sentence" in d:
            return d["sentence"]
        sentences = d.get("sentences") or []
        if not sentences:
            raise ValueError(f"{d.get('file_name')}: referring dict without 'sentence' or 'sentences'")
        return sentences[self.rng.randint(len(sentences))] if self.is_train else sentences[0]

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = read_record_image(d, self.image_format)
        h, w = image.shape[:2]
        mask = annotation_mask(d.pop("annotations", []), h, w)
        aligned = self.is_train or self.eval_at_input_size
        # uint8 sem_seg takes detectron2's PIL nearest-neighbour resize, like LAVT/VPD's "P"-mode target.
        aug = T.AugInput(image, sem_seg=mask if aligned else None)
        self.augmentations(aug)
        d["image"] = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        d["sentence"] = self._sentence(d)
        d["ref_mask"] = torch.as_tensor(np.ascontiguousarray(aug.sem_seg if aligned else mask))
        d["height"], d["width"] = (h, w) if self.is_train else tuple(d["ref_mask"].shape)
        return d
