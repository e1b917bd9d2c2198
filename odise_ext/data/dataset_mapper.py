"""detectron2's ``DatasetMapper`` with the project's image reader (``odise_ext.data.image_io``).

detectron2's mapper reads images and semantic labels with ``detection_utils.read_image``, which
saturates 16-bit files to 255 and converts colour label maps to grey silently. This one reads
the image with :func:`~odise_ext.data.image_io.read_image` (16-bit scaled to 0..255) and the
label map with :func:`~odise_ext.data.image_io.read_label_map` (exact values); for 8-bit RGB /
grey images and 8-bit grey labels its output is the same as detectron2's. Errors name the
record (:func:`describe_record`). Output: detectron2's (``image`` uint8 [3, h, w], ``sem_seg``
int64 [h, w], ``instances``).
"""
import copy
from typing import Dict

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .image_io import read_image, read_label_map

__all__ = ["ImageIODatasetMapper", "describe_record", "read_record_image", "read_record_label_map"]


def describe_record(d: Dict) -> str:
    """How error messages name a dataset dict: its id keys, else its file."""
    ids = [f"{k}={d[k]!r}" for k in ("image_id", "annotator_id", "narrative_index", "ref_id") if k in d]
    return f"record ({', '.join(ids)})" if ids else f"record ({d.get('file_name', '?')})"


def _named(fn, d: Dict, *args):
    try:
        return fn(*args)
    except ValueError as e:
        raise type(e)(f"{e} [{describe_record(d)}]") from None


def read_record_image(d: Dict, image_format: str, *, check_size: bool = True) -> np.ndarray:
    """uint8 [H, W, 3] image of dataset dict ``d`` in ``image_format`` (RGB / BGR), checked
    against its ``height`` / ``width`` if ``check_size``; errors name the record."""
    image = _named(read_image, d, d["file_name"], image_format)
    if check_size:
        utils.check_image_size(d, image)
    return image


def read_record_label_map(d: Dict, key: str) -> np.ndarray:
    """[H, W] exact label values of the file ``d[key]``; errors name the record."""
    return _named(read_label_map, d, d[key], key)


class ImageIODatasetMapper(DatasetMapper):
    """``DatasetMapper`` (same configuration, same transforms) reading through ``image_io``."""

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = read_record_image(d, self.image_format)
        sem_seg = read_record_label_map(d, "sem_seg_file_name") if "sem_seg_file_name" in d else None
        d.pop("sem_seg_file_name", None)
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            d["sem_seg"] = torch.as_tensor(sem_seg.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(d, image.shape[:2], transforms, proposal_topk=self.proposal_topk)
        if not self.is_train:
            d.pop("annotations", None)
            return d
        if "annotations" in d:
            self._transform_annotations(d, transforms, image.shape[:2])
        return d
