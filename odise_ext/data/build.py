"""Dataset-mapper registry: the config names the mapper; no if/elif chains on dataset names."""
from detectron2.utils.registry import Registry

from .dataset_mapper import ImageIODatasetMapper

__all__ = ["DATASET_MAPPER_REGISTRY", "build_dataset_mapper"]

DATASET_MAPPER_REGISTRY = Registry("DATASET_MAPPER")
DATASET_MAPPER_REGISTRY.__doc__ = """
Dataset mappers turn a detectron2 dataset dict into model inputs. Each is called as
``mapper_cls(cfg, is_train)`` (the @configurable convention) and selected by ``DATA.TRAIN_MAPPER``
/ ``DATA.TEST_MAPPER``.
"""


def build_dataset_mapper(cfg, is_train):
    """The mapper named by ``DATA.TRAIN_MAPPER`` (train) or ``DATA.TEST_MAPPER`` (test).

    An empty test mapper name means detectron2's :class:`DatasetMapper` in test mode (resize by
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``), which is what the evaluators expect, reading
    files with the project's reader (:class:`ImageIODatasetMapper`).
    """
    name = cfg.DATA.TRAIN_MAPPER if is_train else cfg.DATA.TEST_MAPPER
    if not name:
        if is_train:
            raise ValueError("DATA.TRAIN_MAPPER is empty: name a registered dataset mapper")
        return ImageIODatasetMapper(cfg, False)
    return DATASET_MAPPER_REGISTRY.get(name)(cfg, is_train)
