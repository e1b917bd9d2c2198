"""PNG's entry in the shared evaluator registry (datasets with ``evaluator_type="png"``)."""
from ..engine.evaluators import register_evaluators
from .evaluation import PNGEvaluator


@register_evaluators("png")
def _png_evaluators(cfg, dataset_name, output_dir):
    return [PNGEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]
