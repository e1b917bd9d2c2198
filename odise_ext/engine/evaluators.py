"""Which evaluators run on which dataset: a registry keyed on the dataset's ``evaluator_type``.

Each registered dataset declares its ``evaluator_type`` in its metadata (set once, where the
dataset is registered). Each task package registers, for the types it evaluates, a function
``(cfg, dataset_name, output_dir) -> [DatasetEvaluator, ...]`` returning the evaluators its
config switches on (e.g. ODISE's ``MODEL.MASK_FORMER.TEST.*_ON``); the shared types (``sem_seg``,
``coco``) are registered here. Every evaluator of the project is built the same way:
``SomeEvaluator(cfg, dataset_name=..., output_dir=...)``, or detectron2's own ones below.
Given the model, its :meth:`~odise_ext.engine.model_hooks.EvaluatedModel.prepare_evaluators`
hook adapts them before any inference (ODISE matches its test vocabulary with the dataset's
classes there).

detectron2's evaluators are built as their ``staged_evaluators`` subclasses, whose output files
(``predictions.json``, ``sem_seg_predictions.json``, ``coco_instances_results.json`` ...) appear
only complete: a full disk leaves no partial file and the error names the path.
"""
import functools
import os

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils.registry import Registry

from ..data.datasets.json_records import check_coco_instances_json
from ..data.image_io import read_label_map
from .model_hooks import evaluated_model, evaluated_model_class
from .staged_evaluators import StagedCOCOEvaluator, StagedPanopticEvaluator, StagedSemSegEvaluator

__all__ = [
    "EVALUATOR_REGISTRY",
    "build_evaluators",
    "instance_evaluator",
    "load_sem_seg_gt",
    "panoptic_evaluator",
    "semantic_evaluator",
]

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
``evaluator_type`` (dataset metadata) -> ``fn(cfg, dataset_name, output_dir)`` returning the
list of enabled evaluators, registered as a function named after the type
(``@EVALUATOR_REGISTRY.register()``).
"""

def load_sem_seg_gt(path, dtype=int, *, dataset_name: str = ""):
    """[H, W] labels of a semantic GT file (exact 8/16-bit values, ``image_io``), each in
    ``[0, num classes)`` or the ignore label of ``dataset_name``'s metadata (``ValueError``
    naming the file and the values otherwise: they would corrupt the confusion matrix).
    (detectron2's default loader calls np.array(..., copy=False), which numpy >= 2 rejects.)"""
    labels = read_label_map(path, "sem_seg_file_name")
    if dataset_name:
        meta = MetadataCatalog.get(dataset_name)
        num_classes, ignore = len(meta.stuff_classes), meta.get("ignore_label", None)
        bad = np.unique(labels[(labels < 0) | ((labels >= num_classes) & (labels != ignore))])
        if bad.size:
            raise ValueError(
                f"sem_seg_file_name '{path}' of dataset '{dataset_name}' holds label values {bad[:8].tolist()}"
                f"{' ...' if bad.size > 8 else ''} outside 0..{num_classes - 1} that are not the ignore label "
                f"{ignore}: fix the label map (or the dataset's stuff_classes / ignore_label)"
            )
    return labels.astype(dtype)


def panoptic_evaluator(cfg, dataset_name, output_dir):
    return StagedPanopticEvaluator(dataset_name, output_dir=output_dir)


def semantic_evaluator(cfg, dataset_name, output_dir):
    return StagedSemSegEvaluator(dataset_name, distributed=True, output_dir=output_dir, sem_seg_loading_fn=functools.partial(load_sem_seg_gt, dataset_name=dataset_name))


def instance_evaluator(cfg, dataset_name, output_dir):
    """COCO box / mask / keypoint AP. The tasks are inferred from the predictions, unless the
    meta-architecture names them in ``coco_eval_tasks`` (top-down pose predicts keypoints *for
    given boxes*, COCO's GT-boxes protocol: its boxes are inputs, not predictions to score)."""
    json_file = MetadataCatalog.get(dataset_name).get("json_file", None)
    if json_file and os.path.isfile(json_file):  # its ground truth: no image or annotation twice
        check_coco_instances_json(json_file)
    tasks = evaluated_model_class(cfg).coco_eval_tasks
    # use_fast_impl=False: the C++ COCOeval needs detectron2's compiled ops, which may be absent.
    # The OKS sigmas matter for keypoint datasets whose keypoints are not COCO's 17 (empty = COCO's).
    return StagedCOCOEvaluator(
        dataset_name,
        tasks=tasks,
        output_dir=output_dir,
        use_fast_impl=False,
        kpt_oks_sigmas=tuple(cfg.TEST.KEYPOINT_OKS_SIGMAS),
    )


@EVALUATOR_REGISTRY.register()
def sem_seg(cfg, dataset_name, output_dir):
    return [semantic_evaluator(cfg, dataset_name, output_dir)]


@EVALUATOR_REGISTRY.register()
def coco(cfg, dataset_name, output_dir):
    return [instance_evaluator(cfg, dataset_name, output_dir)]


def build_evaluators(cfg, dataset_name, output_folder=None, *, model=None):
    """The :class:`DatasetEvaluators` for ``dataset_name``, from its ``evaluator_type``.

    Args:
        model: the model to be evaluated (an :class:`~odise_ext.engine.model_hooks.EvaluatedModel`,
            or a DDP wrapper of one), or None: its ``prepare_evaluators`` hook adapts the
            evaluators (e.g. to an open-vocabulary model's test vocabulary) or raises
            ``ValueError`` when the dataset's metrics are not defined for it.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if kind not in EVALUATOR_REGISTRY:
        known = sorted(name for name, _ in EVALUATOR_REGISTRY)
        raise ValueError(f"dataset '{dataset_name}' has evaluator_type={kind!r}; known types: {known}")
    evaluators = EVALUATOR_REGISTRY.get(kind)(cfg, dataset_name, output_folder)
    if not evaluators:
        raise ValueError(f"no evaluator enabled for dataset '{dataset_name}' (type {kind}); check the *_ON switches")
    if model is not None:
        evaluators = evaluated_model(model).prepare_evaluators(cfg, dataset_name, list(evaluators))
    return DatasetEvaluators(evaluators)
