"""What the engine asks of a meta-architecture, declared once for every model of the project.

Every meta-architecture registered by odise_ext derives from :class:`EvaluatedModel`; the
engine calls these hooks directly (no attribute probing), and a task overrides the ones it needs
(ODISE: its test vocabulary's mapping onto the dataset's classes; top-down pose: the COCO tasks).
"""
from typing import List, Optional, Tuple

from detectron2.modeling import META_ARCH_REGISTRY
from torch.nn.parallel import DistributedDataParallel

__all__ = ["EvaluatedModel", "evaluated_model", "evaluated_model_class"]


class EvaluatedModel:
    """Mixin of the engine's evaluation hooks; the defaults suit a closed-vocabulary model."""

    # COCO tasks ("bbox", "segm", "keypoints") scored by the instance evaluator; None: inferred
    # from the predictions (detectron2's default).
    coco_eval_tasks: Optional[Tuple[str, ...]] = None

    def prepare_evaluators(self, cfg, dataset_name: str, evaluators: List) -> List:
        """The evaluators to score this model on ``dataset_name`` with, from those its
        ``evaluator_type`` enables. Called before any inference: raise ``ValueError`` here when the
        dataset's metrics are not defined for this model. Default: ``evaluators`` unchanged."""
        return evaluators


def evaluated_model_class(cfg) -> type:
    """The class of ``cfg.MODEL.META_ARCHITECTURE``; ``TypeError`` if it lacks the engine hooks."""
    cls = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    if not issubclass(cls, EvaluatedModel):
        raise TypeError(f"MODEL.META_ARCHITECTURE {cls.__name__} does not derive from "
                        "odise_ext.engine.model_hooks.EvaluatedModel: add it to the class's bases")
    return cls


def evaluated_model(model) -> EvaluatedModel:
    """``model`` (or the module a DDP wrapper holds); ``TypeError`` if it lacks the engine hooks."""
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    if not isinstance(inner, EvaluatedModel):
        raise TypeError(f"{type(inner).__name__} does not derive from odise_ext.engine.model_hooks.EvaluatedModel: "
                        "add it to the class's bases")
    return inner
