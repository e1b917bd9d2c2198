"""PNG's entries in the shared registries: the evaluator of datasets with ``evaluator_type="png"``
and the demo (``tools/demo.py --narrative "..." [--phrases "a;b"]``: one coloured mask per phrase;
the web demo's tab, ``web_demo.py``)."""
from detectron2.modeling import build_model

from ..engine.demo import TaskDemo, register_demo
from ..engine.evaluators import EVALUATOR_REGISTRY
from ..engine.safe_checkpoint import SafeCheckpointer
from .evaluation import PNGEvaluator
from .narrative import PNGPredictor, find_noun_phrases, locate_phrases, split_phrases

__all__ = ["PNGDiffusionDemo"]


@EVALUATOR_REGISTRY.register()
def png(cfg, dataset_name, output_dir):
    return [PNGEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]


@register_demo
class PNGDiffusionDemo(TaskDemo):
    flags = ("narrative", "phrases")
    web_title, web_prefix = "Panoptic narrative grounding", "png"

    def check_args(self):
        narrative = self.args.narrative.strip()
        if not narrative:
            raise SystemExit('this Panoptic Narrative Grounding model needs --narrative "a dog runs on the grass ..."')
        if self.args.phrases.strip():
            phrases, self.note = split_phrases(self.args.phrases), "phrases from --phrases"
        else:
            phrases, self.note = find_noun_phrases(narrative)
            if not phrases:
                raise SystemExit(f"no noun phrase found in --narrative ({self.note}); "
                                 'give the phrases to ground with --phrases "a dog;the grass"')
        try:
            self.spans = locate_phrases(narrative, phrases)
        except ValueError as e:
            raise SystemExit(f"--phrases: {e}")
        self.narrative, self.phrases = narrative, phrases

    def build_predictor(self):
        return PNGPredictor(self.cfg)

    def inputs(self, bgr):
        return {"narrative": self.narrative, "spans": self.spans}

    def draw(self, rgb, output, metadata):
        from ..utils.visualization import display_factor, enlarge_image
        from .visualization import draw_png

        big = enlarge_image(rgb, display_factor(*rgb.shape[:2]))
        masks = upscale_masks(output["png_masks"].float(), big.shape[:2])
        summary = f"{len(self.phrases)} phrases ({self.note}): " + "; ".join(self.phrases)
        return draw_png(big, self.narrative, self.spans, masks, font_size=max(14, big.shape[1] // 36)), summary


    def web_runner(self):
        from .web_demo import PNGRunner

        model = build_model(self.cfg).eval()
        SafeCheckpointer(model).load(self.cfg.MODEL.WEIGHTS)
        runner = PNGRunner(self.cfg, model)
        return runner, runner.aug

    def web_tab(self, session, prefix, tagger):
        from .web_demo import grounding_tab

        grounding_tab(session, prefix, tagger)


def upscale_masks(masks, size):
    """[P, h, w] probabilities -> float numpy [P, H, W] (bilinear; soft masks stay soft)."""
    import torch.nn.functional as F

    if tuple(masks.shape[-2:]) != tuple(size):
        masks = F.interpolate(masks[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    return masks.clamp(0, 1).cpu().numpy()
