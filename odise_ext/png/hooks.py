"""PNG's entries in the shared registries: the evaluator of datasets with ``evaluator_type="png"``
and the demo (a narrative's noun phrases grounded in the web demo's tab, ``web_demo.py``)."""
from ..engine.safe_checkpoint import SafeCheckpointer
from detectron2.modeling import build_model

from ..engine.demo import TaskDemo, register_demo
from ..engine.evaluators import EVALUATOR_REGISTRY
from .evaluation import PNGEvaluator

__all__ = ["PNGDiffusionDemo"]


@EVALUATOR_REGISTRY.register()
def png(cfg, dataset_name, output_dir):
    return [PNGEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]


@register_demo
class PNGDiffusionDemo(TaskDemo):
    web_title, web_prefix = "Panoptic narrative grounding", "png"

    def check_args(self):
        raise SystemExit("PNGDiffusion grounds the noun phrases of a narrative: run it in the web demo "
                         "(tools/web_demo.py), which finds and lets you edit the phrases")

    def web_runner(self):
        from .web_demo import PNGRunner

        model = build_model(self.cfg).eval()
        SafeCheckpointer(model).load(self.cfg.MODEL.WEIGHTS)
        runner = PNGRunner(self.cfg, model)
        return runner, runner.aug

    def web_tab(self, session, prefix, tagger):
        from .web_demo import grounding_tab

        grounding_tab(session, prefix, tagger)
