"""Training mapper of VPD / Meta-Prompts semantic segmentation (mmseg's ADE20K / Cityscapes
recipe): random rescale of the short side within ``SEM_SEG_SCALE_RANGE`` x ``SEM_SEG_BASE_SIZE``,
random crop ``INPUT.CROP.SIZE`` in which no class covers more than
``MODEL.VPD.DATA.SEM_SEG_CAT_MAX_AREA`` (0.75), horizontal flip. Padding to the backbone's size
divisibility (labels with the ignore value) happens in the model. Test time uses detectron2's
``DatasetMapper`` (``DATA.TEST_MAPPER ""``: resize to ``INPUT.MIN_SIZE_TEST``)."""
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T

from ...data.build import DATASET_MAPPER_REGISTRY

__all__ = ["VPDSemSegMapper"]


@DATASET_MAPPER_REGISTRY.register()
class VPDSemSegMapper(DatasetMapper):
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
        d = cfg.MODEL.VPD.DATA
        lo, hi = d.SEM_SEG_SCALE_RANGE
        if not 0 < lo <= hi:
            raise ValueError(f"MODEL.VPD.DATA.SEM_SEG_SCALE_RANGE must be 0 < lo <= hi, got {[lo, hi]}")
        base = d.SEM_SEG_BASE_SIZE
        augs = [T.ResizeShortestEdge((int(base * lo), int(base * hi)), int(4 * base * hi), "range")]
        if cfg.INPUT.CROP.ENABLED:
            augs.append(
                T.RandomCrop_CategoryAreaConstraint(
                    cfg.INPUT.CROP.TYPE,
                    cfg.INPUT.CROP.SIZE,
                    d.SEM_SEG_CAT_MAX_AREA,
                    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
                )
            )
        augs.append(T.RandomFlip())
        args["augmentations"] = augs
        args["recompute_boxes"] = False
        return args
