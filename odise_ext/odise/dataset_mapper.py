"""Training mapper for panoptic datasets with large-scale jitter (ODISE / Mask2Former COCO recipe).

Turns a ``*_panoptic_with_sem_seg`` (or ``*_panoptic_caption_with_sem_seg``) dataset dict into:

- ``image``: uint8 tensor [3, S, S] (S = ``DATA.LSJ.IMAGE_SIZE``), the jittered, cropped and padded image;
- ``padding_mask``: bool tensor [S, S], True where the crop was padded (no image there);
- ``instances``: :class:`Instances` with ``gt_classes`` [N] (contiguous ids), ``gt_masks`` [N, S, S]
  bool and ``gt_boxes``; one instance per non-crowd segment visible in the crop;
- ``caption_phrases`` (caption datasets only): a list of ``num_phrases`` noun
  phrases sampled with replacement from one random caption's phrases (ODISE's grounding loss).
"""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances
from panopticapi.utils import rgb2id

from ..data.build import DATASET_MAPPER_REGISTRY
from ..data.dataset_mapper import describe_record, read_record_image
from ..data.image_io import read_panoptic_rgb

__all__ = ["PanopticLSJMapper"]


@DATASET_MAPPER_REGISTRY.register()
class PanopticLSJMapper:
    @configurable
    def __init__(self, *, is_train=True, augmentations, image_format="RGB", num_phrases=8, seed=None):
        """
        Args:
            augmentations: detectron2 augmentations (flip, ResizeScale, FixedSizeCrop for LSJ).
            image_format: channel order of the returned image.
            num_phrases: how many noun phrases to sample (with replacement) per image.
            seed: seeds the phrase sampling (None: numpy's global RNG, like the augmentations).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_phrases = num_phrases
        # Without a seed, numpy's global RNG: detectron2 re-seeds it in every data-loader worker.
        # (None: numpy's global RNG, looked up when used: a module cannot be pickled to spawned workers)
        self._own_rng = np.random.RandomState(seed) if seed is not None else None

    @property
    def rng(self):
        return self._own_rng if self._own_rng is not None else np.random

    @classmethod
    def from_config(cls, cfg, is_train=True):
        size = cfg.DATA.LSJ.IMAGE_SIZE
        augs = [
            T.RandomFlip(horizontal=True),
            T.ResizeScale(min_scale=cfg.DATA.LSJ.MIN_SCALE, max_scale=cfg.DATA.LSJ.MAX_SCALE, target_height=size, target_width=size),
            T.FixedSizeCrop(crop_size=(size, size)),
        ]
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "num_phrases": cfg.MODEL.ODISE.CAPTION.NUM_PHRASES,
        }

    def _sample_phrases(self, dataset_dict):
        phrases_per_caption = [p for p in dataset_dict.get("caption_noun_phrases", []) if p]
        if not phrases_per_caption:
            raise ValueError(
                f"image {dataset_dict.get('image_id')}: caption dataset without noun phrases "
                "(run the dataset's prepare script to extract them)"
            )
        phrases = phrases_per_caption[self.rng.randint(len(phrases_per_caption))]
        idx = self.rng.randint(0, len(phrases), size=self.num_phrases)
        return [phrases[i] for i in idx]

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_record_image(dataset_dict, self.image_format)
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(f"{dataset_dict['file_name']}: PanopticLSJMapper needs 'pan_seg_file_name' (a panoptic dataset)")
        # Transform the uint8 RGB encoding (nearest), then decode ids: detectron2's resize cannot
        # interpolate int32 id maps.
        pan_rgb = read_panoptic_rgb(dataset_dict.pop("pan_seg_file_name"))
        if pan_rgb.shape[:2] != image.shape[:2]:
            raise ValueError(f"{dataset_dict['file_name']}: panoptic map {pan_rgb.shape[:2]} does not match image "
                             f"{image.shape[:2]} [{describe_record(dataset_dict)}]")

        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        # Padding is where a map of ones (original size) stops being one after the same
        # transforms (detectron2 pads segmentations with 255).
        valid = transforms.apply_segmentation(np.ones(image.shape[:2], dtype=np.uint8)) == 1
        image = aug_input.image
        pan_seg = rgb2id(transforms.apply_segmentation(pan_rgb))

        h, w = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["padding_mask"] = torch.as_tensor(~valid)
        dataset_dict.pop("sem_seg_file_name", None)

        classes, masks = [], []
        for seg in dataset_dict.pop("segments_info"):
            if seg.get("iscrowd", 0):
                continue
            m = (pan_seg == seg["id"]) & valid
            if m.any():
                classes.append(seg["category_id"])
                masks.append(m)
        instances = Instances((h, w))
        instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
        if masks:
            bitmasks = BitMasks(torch.stack([torch.from_numpy(np.ascontiguousarray(m)) for m in masks]))
        else:
            bitmasks = BitMasks(torch.zeros((0, h, w), dtype=torch.bool))
        instances.gt_masks = bitmasks.tensor
        instances.gt_boxes = bitmasks.get_bounding_boxes() if masks else Boxes(torch.zeros((0, 4)))
        dataset_dict["instances"] = instances

        if "captions" in dataset_dict:
            dataset_dict["caption_phrases"] = self._sample_phrases(dataset_dict)
        return dataset_dict
