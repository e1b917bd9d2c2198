"""ODISE's entries in the shared registries: evaluators of the panoptic datasets it trains and
tests on, and its demo (open vocabulary from ``--vocab``, panoptic drawing; the web tab of
``web_demo.py``)."""
from ..engine.demo import TaskDemo, register_demo
from ..engine.evaluators import EVALUATOR_REGISTRY, instance_evaluator, panoptic_evaluator, semantic_evaluator
from ..utils.visualization import draw_panoptic, vocabulary_metadata
from .open_vocab.vocabulary import parse_vocabulary

__all__ = ["ODISEDemo"]


def _mask_former_evaluators(cfg, dataset_name, output_dir):
    """The evaluators of the outputs switched on by ``MODEL.MASK_FORMER.TEST.*_ON``."""
    test = cfg.MODEL.MASK_FORMER.TEST
    enabled = (
        (test.PANOPTIC_ON, panoptic_evaluator),
        (test.SEMANTIC_ON, semantic_evaluator),
        (test.INSTANCE_ON, instance_evaluator),
    )
    return [build(cfg, dataset_name, output_dir) for on, build in enabled if on]


@EVALUATOR_REGISTRY.register()
def coco_panoptic_seg(cfg, dataset_name, output_dir):
    return _mask_former_evaluators(cfg, dataset_name, output_dir)


@EVALUATOR_REGISTRY.register()
def ade20k_panoptic_seg(cfg, dataset_name, output_dir):
    return _mask_former_evaluators(cfg, dataset_name, output_dir)


@register_demo
class ODISEDemo(TaskDemo):
    flags = ("vocab", "things")
    web_title, web_prefix = "Open-vocabulary panoptic segmentation", "odise"

    def check_args(self):
        args = self.args
        if args.things and not args.vocab:
            raise SystemExit("--things names classes of --vocab: give --vocab too")
        self.vocabulary = None  # --vocab's classes, passed to every call (None: the model's test vocabulary)
        if args.vocab:
            things = [t.strip() for t in args.things.split(";") if t.strip()]
            try:
                self.vocabulary = parse_vocabulary(args.vocab, thing_names=things)
            except ValueError as e:
                raise SystemExit(f"--vocab / --things: {e}")

    def metadata(self, model):
        """The vocabulary from --vocab (or the model's test vocabulary) -> drawing metadata."""
        vocabulary = model.test_vocabulary if self.vocabulary is None else self.vocabulary
        return vocabulary_metadata(vocabulary.names)

    def inputs(self, bgr):
        return {} if self.vocabulary is None else {"vocabulary": self.vocabulary}

    def web_runner(self):
        # The page draws the panoptic output and scores segments with the semantic one; instance
        # inference would only cost time.
        test = self.cfg.MODEL.MASK_FORMER.TEST
        test.PANOPTIC_ON, test.SEMANTIC_ON, test.INSTANCE_ON = True, True, False
        return super().web_runner()

    def random_parts(self):
        clip = ["CLIP (MODEL.CLIP.WEIGHTS = random)"] if self.cfg.MODEL.CLIP.WEIGHTS == "random" else []
        return super().random_parts() + clip

    def web_tab(self, session, prefix, tagger):
        from .web_demo import panoptic_tab

        panoptic_tab(session, prefix, tagger)

    def draw(self, rgb, output, metadata):
        if "panoptic_seg" not in output:
            raise SystemExit(
                f"no drawable output among {sorted(output)}; enable MODEL.MASK_FORMER.TEST.PANOPTIC_ON"
            )
        seg, info = output["panoptic_seg"]
        return draw_panoptic(rgb, seg, info, metadata), f"{len(info)} segments"
