from .checkpoint import AtomicCheckpointer
from .safe_checkpoint import SafeCheckpointer
from .evaluators import EVALUATOR_REGISTRY, build_evaluators
from .optimizer import build_optimizer
from .trainer import Trainer, create_ddp_model

__all__ = ["AtomicCheckpointer", "SafeCheckpointer", "EVALUATOR_REGISTRY", "build_evaluators", "build_optimizer", "Trainer", "create_ddp_model"]
