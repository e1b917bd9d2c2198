"""Dataset mapper for Panoptic Narrative Grounding: a narrative dict -> model inputs.

Input: a dict of :func:`odise_ext.data.datasets.register_png.load_png_narratives`. Output::

    image            uint8 tensor [3, S, S] (S = DATA.PNG.IMAGE_SIZE; channel order INPUT.FORMAT)
    height, width    original image size (predictions are evaluated against it)
    image_id, annotator_id, narrative_index, caption
    phrases          list[str] of P grounded noun phrases, in caption order
    caption_tokens   LongTensor [T]: CLIP BPE ids with <start>/<end>, not truncated
    phrase_token_spans  LongTensor [P, 2]: token span [start, end) of each phrase in caption_tokens
    gt_masks         BoolTensor [P, S, S] in training, [P, height, width] (original resolution,
                     what the evaluator compares against) at test time: union of each phrase's
                     panoptic segments
    plural           BoolTensor [P]: the phrase links to >= 2 segments
    is_thing         BoolTensor [P]: category of the phrase's last segment is a thing
    phrase_classes   LongTensor [P]: contiguous category id of the last segment

The image is resized with bilinear interpolation and, in training, each mask with nearest
neighbour through the same detectron2 transform, so masks stay aligned with the image. No flip: narratives say "left"
and "right".
"""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from panopticapi.utils import rgb2id

from ..data.build import DATASET_MAPPER_REGISTRY
from ..data.dataset_mapper import read_record_image
from ..data.image_io import read_panoptic_rgb
from ..data.phrases import CaptionTokenizer

__all__ = ["PNGDatasetMapper"]


@DATASET_MAPPER_REGISTRY.register()
class PNGDatasetMapper:
    @configurable
    def __init__(self, *, is_train=True, augmentations, image_format="RGB", max_phrases=0, tokenizer=None):
        """
        Args:
            is_train: training mode (then ``max_phrases`` applies).
            augmentations: detectron2 augmentations applied to the image and the masks.
            image_format: channel order of the returned image ("RGB" or "BGR").
            max_phrases: in training, keep only the first ``max_phrases`` phrases (0: all). At
                test time every phrase is kept, since each is an evaluation unit.
            tokenizer: a :class:`CaptionTokenizer` (default: a new one).
        """
        if max_phrases < 0:
            raise ValueError(f"max_phrases must be >= 0 (0 = no limit), got {max_phrases}")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.max_phrases = max_phrases
        self.tokenizer = tokenizer if tokenizer is not None else CaptionTokenizer()

    @classmethod
    def from_config(cls, cfg, is_train=True):
        size = cfg.DATA.PNG.IMAGE_SIZE
        if size <= 0:
            raise ValueError(f"DATA.PNG.IMAGE_SIZE must be positive, got {size}")
        return {
            "is_train": is_train,
            "augmentations": [T.Resize((size, size))],
            "image_format": cfg.INPUT.FORMAT,
            "max_phrases": cfg.DATA.PNG.MAX_PHRASES_TRAIN,
        }

    def _phrase_masks(self, dataset_dict, phrases, image_shape):
        """Masks [P, H, W] bool (original resolution) from the panoptic PNG, by segment id."""
        pan_seg = rgb2id(read_panoptic_rgb(dataset_dict["pan_seg_file_name"]))
        if pan_seg.shape != image_shape:
            raise ValueError(
                f"image {dataset_dict['image_id']}: panoptic PNG {dataset_dict['pan_seg_file_name']} is "
                f"{pan_seg.shape[1]}x{pan_seg.shape[0]} but the image is {image_shape[1]}x{image_shape[0]}"
            )
        present = set(np.unique(pan_seg).tolist())
        masks = []
        for phrase in phrases:
            absent = [i for i in phrase["segment_ids"] if i not in present]
            if absent:
                raise ValueError(
                    f"image {dataset_dict['image_id']}, phrase {phrase['text']!r}: segment id(s) {absent} "
                    f"have no pixel in {dataset_dict['pan_seg_file_name']}"
                )
            masks.append(np.isin(pan_seg, phrase["segment_ids"]))
        return masks

    def __call__(self, dataset_dict):
        """Map one narrative dict (see the module docstring for the output)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        phrases = dataset_dict.pop("phrases")
        if not phrases:
            raise ValueError(f"image {dataset_dict['image_id']}: narrative has no grounded phrase")
        if self.is_train and self.max_phrases:
            phrases = phrases[: self.max_phrases]

        image = read_record_image(dataset_dict, self.image_format)
        masks = self._phrase_masks(dataset_dict, phrases, image.shape[:2])

        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        if self.is_train:
            # uint8 masks take detectron2's PIL nearest-neighbour path (pixel-centre aligned).
            masks = [transforms.apply_segmentation(m.astype(np.uint8)) for m in masks]

        tokens = self.tokenizer(dataset_dict["caption"], [p["char_span"] for p in phrases])
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["phrases"] = [p["text"] for p in phrases]
        dataset_dict["caption_tokens"] = tokens.token_ids
        dataset_dict["phrase_token_spans"] = tokens.spans
        dataset_dict["gt_masks"] = torch.as_tensor(np.stack(masks)).bool()
        dataset_dict["plural"] = torch.tensor([p["plural"] for p in phrases], dtype=torch.bool)
        dataset_dict["is_thing"] = torch.tensor([p["isthing"] for p in phrases], dtype=torch.bool)
        dataset_dict["phrase_classes"] = torch.tensor([p["category_id"] for p in phrases], dtype=torch.long)
        return dataset_dict
