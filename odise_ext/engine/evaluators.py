"""Which evaluators run on which dataset: an explicit table, no guessing from dataset names.

Each registered dataset declares its ``evaluator_type`` in its metadata (set once, where the
dataset is registered). ``EVALUATOR_TABLE`` maps that type to the evaluators that can run on it,
each with the config switch that turns it on (e.g. ``MODEL.MASK_FORMER.TEST.SEMANTIC_ON``).

detectron2's evaluators write their outputs (``predictions.json``, ``sem_seg_predictions.json``,
``coco_instances_results.json`` ...) through ``PathManager`` in place; while ours evaluate, those
writes are atomic (``utils/atomic_io.py``): a full disk leaves no partial file and the error
names the path.
"""
import os

import detectron2.evaluation.coco_evaluation
import detectron2.evaluation.panoptic_evaluation
import detectron2.evaluation.sem_seg_evaluation
import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, DatasetEvaluators, SemSegEvaluator
from detectron2.utils.file_io import PathManager
from PIL import Image

from ..utils.atomic_io import atomic_path_manager_in

__all__ = ["EVALUATOR_TABLE", "AtomicOutputEvaluators", "build_evaluators"]

_WRITING_MODULES = (
    detectron2.evaluation.coco_evaluation,
    detectron2.evaluation.panoptic_evaluation,
    detectron2.evaluation.sem_seg_evaluation,
)


class AtomicOutputEvaluators(DatasetEvaluators):
    """:class:`DatasetEvaluators` whose members' output files are written atomically."""

    def evaluate(self):
        with atomic_path_manager_in(*_WRITING_MODULES):
            return super().evaluate()


def _panoptic(cfg, name, out):
    return COCOPanopticEvaluator(name, out)


def _load_sem_seg(path, dtype=int):
    # detectron2's default loader calls np.array(..., copy=False), which numpy >= 2 rejects.
    with PathManager.open(path, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)


def _semantic(cfg, name, out):
    return SemSegEvaluator(name, distributed=True, output_dir=out, sem_seg_loading_fn=_load_sem_seg)


# Meta-architectures whose COCO predictions are scored on fewer tasks than the predicted fields
# suggest: top-down pose predicts keypoints *for given boxes* (COCO's GT-boxes protocol), so its
# boxes are inputs, not predictions to score. Others: tasks inferred from the predictions.
_COCO_TASKS = {"VPDPoseEstimator": ("keypoints",)}


def _instances(cfg, name, out):
    # use_fast_impl=False: the C++ COCOeval needs detectron2's compiled ops, which may be absent.
    # The OKS sigmas matter for keypoint datasets whose keypoints are not COCO's 17 (empty = COCO's).
    return COCOEvaluator(
        name,
        tasks=_COCO_TASKS.get(cfg.MODEL.META_ARCHITECTURE),
        output_dir=out,
        use_fast_impl=False,
        kpt_oks_sigmas=tuple(cfg.TEST.KEYPOINT_OKS_SIGMAS),
    )


def _png(cfg, name, out):
    from ..evaluation.png_evaluation import PNGEvaluator

    return PNGEvaluator(name, cfg=cfg)


def _depth(cfg, name, out):
    from ..evaluation.depth_evaluation import DepthEvaluator

    return DepthEvaluator(cfg, dataset_name=name, output_dir=out)


def _refer(cfg, name, out):
    from ..evaluation.refer_evaluation import ReferEvaluator

    return ReferEvaluator(cfg, dataset_name=name)


def _always(cfg):
    return True


def _mask_former_test(flag):
    return lambda cfg: bool(getattr(cfg.MODEL.MASK_FORMER.TEST, flag))


_PANOPTIC_FAMILY = (
    (_panoptic, _mask_former_test("PANOPTIC_ON")),
    (_semantic, _mask_former_test("SEMANTIC_ON")),
    (_instances, _mask_former_test("INSTANCE_ON")),
)

# evaluator_type (dataset metadata) -> ((builder(cfg, dataset_name, output_dir), enabled(cfg)), ...)
EVALUATOR_TABLE = {
    "coco_panoptic_seg": _PANOPTIC_FAMILY,
    "ade20k_panoptic_seg": _PANOPTIC_FAMILY,
    "sem_seg": ((_semantic, _always),),
    "coco": ((_instances, _always),),
    "png": ((_png, _always),),
    "depth": ((_depth, _always),),
    "refer": ((_refer, _always),),
}


def build_evaluators(cfg, dataset_name, output_folder=None):
    """The :class:`DatasetEvaluators` for ``dataset_name``, from its ``evaluator_type``."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    meta = MetadataCatalog.get(dataset_name)
    kind = meta.get("evaluator_type")
    if kind not in EVALUATOR_TABLE:
        raise ValueError(
            f"dataset '{dataset_name}' has evaluator_type={kind!r}; known types: {sorted(EVALUATOR_TABLE)}"
        )
    evaluators = [build(cfg, dataset_name, output_folder) for build, enabled in EVALUATOR_TABLE[kind] if enabled(cfg)]
    if not evaluators:
        raise ValueError(f"no evaluator enabled for dataset '{dataset_name}' (type {kind}); check the *_ON switches")
    return AtomicOutputEvaluators(evaluators)
