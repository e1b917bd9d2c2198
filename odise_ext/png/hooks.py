"""PNG's entry in the shared evaluator registry (datasets with ``evaluator_type="png"``)."""
from ..engine.evaluators import EVALUATOR_REGISTRY
from .evaluation import PNGEvaluator


@EVALUATOR_REGISTRY.register()
def png(cfg, dataset_name, output_dir):
    return [PNGEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]
