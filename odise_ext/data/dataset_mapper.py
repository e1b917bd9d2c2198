"""detectron2's ``DatasetMapper`` with the project's image reader (``odise_ext.data.image_io``).

detectron2's mapper reads images and semantic labels with ``detection_utils.read_image``, which
saturates 16-bit files to 255 and converts colour label maps to grey silently. This one reads
the image with :func:`~odise_ext.data.image_io.read_image` (16-bit scaled to 0..255) and the
label map with :func:`~odise_ext.data.image_io.read_label_map` (exact values); for 8-bit RGB /
grey images and 8-bit grey labels its output is the same as detectron2's. Label values that are
neither a class of the datasets' metadata (``stuff_classes``) nor their ``ignore_label`` are an
error naming the file, the record and the values, at the moment the map is read (a min / max
test; the values are listed only on failure). Errors name the record (:func:`describe_record`).
Output: detectron2's (``image`` uint8 [3, h, w], ``sem_seg``
int64 [h, w], ``instances``).
"""
import copy
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .image_io import read_image, read_label_map

__all__ = ["ImageIODatasetMapper", "check_label_values", "describe_record", "label_range_of", "read_record_image",
           "read_record_label_map"]


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


def check_label_values(labels: np.ndarray, num_classes: int, ignore: Optional[int], d: Dict, key: str) -> None:
    """ValueError naming ``d[key]``, the record and the values of ``labels`` (any shape) that are
    neither in ``[0, num_classes)`` nor ``ignore``. Costs a min / max unless something is wrong."""
    if labels.size == 0 or (labels.min() >= 0 and labels.max() < num_classes):
        return
    bad = np.unique(labels[(labels < 0) | ((labels >= num_classes) & (labels != ignore))])
    if bad.size:
        raise ValueError(
            f"{key} {d[key]} holds label values {bad[:8].tolist()}{' ...' if bad.size > 8 else ''} outside "
            f"0..{num_classes - 1} that are not the ignore label {ignore} [{describe_record(d)}]: fix the file, or "
            "the dataset's metadata (stuff_classes, ignore_label)")


def read_record_label_map(d: Dict, key: str, label_range: Optional[Tuple[int, Optional[int]]] = None) -> np.ndarray:
    """[H, W] exact label values of the file ``d[key]``, checked against ``label_range``
    ((number of classes, ignore label), see :func:`check_label_values`) if given; errors name the record."""
    labels = _named(read_label_map, d, d[key], key)
    if label_range is not None:
        check_label_values(labels, *label_range, d, key)
    return labels


def label_range_of(dataset_names: Sequence[str]) -> Optional[Tuple[int, Optional[int]]]:
    """(number of ``stuff_classes``, ``ignore_label``) shared by the metadata of ``dataset_names``,
    or None if one has no ``stuff_classes`` or they differ (labels are then not checked here;
    the evaluator and the dataset check still name them)."""
    ranges = set()
    for name in dataset_names:
        meta = MetadataCatalog.get(name) if name in MetadataCatalog.list() else None
        if meta is None or not meta.get("stuff_classes", None):
            return None
        ranges.add((len(meta.stuff_classes), meta.get("ignore_label", None)))
    return ranges.pop() if len(ranges) == 1 else None


class ImageIODatasetMapper(DatasetMapper):
    """``DatasetMapper`` (same configuration, same transforms) reading through ``image_io``."""

    @configurable
    def __init__(self, is_train: bool = True, *, sem_seg_label_range: Optional[Tuple[int, Optional[int]]] = None,
                 **kwargs):
        """
        Args:
            sem_seg_label_range: (number of classes, ignore label) every semantic label value must
                fall in (:func:`check_label_values`); None: not checked.
            is_train, kwargs: detectron2 ``DatasetMapper``'s.
        """
        super().__init__(is_train, **kwargs)
        self.sem_seg_label_range = sem_seg_label_range

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        args = super().from_config(cfg, is_train)
        args["sem_seg_label_range"] = label_range_of(cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)
        return args

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = read_record_image(d, self.image_format)
        sem_seg = (read_record_label_map(d, "sem_seg_file_name", self.sem_seg_label_range)
                   if "sem_seg_file_name" in d else None)
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
