"""Mapper of keypoint datasets (COCO person keypoints, the shapes-world stars) for top-down pose
with ground-truth boxes. The whole image is returned with its non-crowd instances (``gt_boxes``,
``gt_keypoints``) in training *and* at test time (COCO's "GT boxes" protocol); the model cuts the
person crops itself. Training augmentation: resize (``INPUT.MIN_SIZE_TRAIN``) and horizontal flip
with left/right keypoints swapped (the dataset metadata's ``keypoint_flip_map``)."""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ...data.build import DATASET_MAPPER_REGISTRY
from ...data.dataset_mapper import read_record_image

__all__ = ["TopDownKeypointMapper"]


@DATASET_MAPPER_REGISTRY.register()
class TopDownKeypointMapper:
    @configurable
    def __init__(self, *, is_train: bool, augmentations, image_format: str, keypoint_hflip_indices=None):
        """
        Args:
            is_train: training or test (both keep the annotations).
            augmentations: detectron2 augmentations.
            image_format: channel order of the returned image.
            keypoint_hflip_indices: keypoint permutation of a horizontal flip (needed with flips).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.keypoint_hflip_indices = keypoint_hflip_indices

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "keypoint_hflip_indices": utils.create_keypoint_hflip_indices(names) if is_train else None,
        }

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = read_record_image(d, self.image_format)
        aug = T.AugInput(image)
        transforms = self.augmentations(aug)
        image = aug.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        annos = [
            utils.transform_instance_annotations(
                a, transforms, image.shape[:2], keypoint_hflip_indices=self.keypoint_hflip_indices
            )
            for a in d.pop("annotations", [])
            if a.get("iscrowd", 0) == 0
        ]
        if any("keypoints" not in a for a in annos):
            raise ValueError(f"{d['file_name']}: keypoint dataset annotations need 'keypoints'")
        d["instances"] = utils.annotations_to_instances(annos, image.shape[:2], mask_format="bitmask")
        return d
