"""VPD / Meta-Prompts entries in the shared registries: the depth and referring evaluators, and
the demo of each of the four meta-architectures (predictor, task inputs, drawing)."""

from ..engine.demo import TaskDemo, register_demo
from ..engine.evaluators import EVALUATOR_REGISTRY
from ..utils.input_checks import InputError
from . import visualization as vpd_vis
from .evaluation import DepthEvaluator, ReferEvaluator
from .person_crops import parse_boxes
from .predictor import DensePredictor
from . import web_demo

__all__ = ["DensePoseEstimatorDemo"]


@EVALUATOR_REGISTRY.register()
def depth(cfg, dataset_name, output_dir):
    return [DepthEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]


@EVALUATOR_REGISTRY.register()
def refer(cfg, dataset_name, output_dir):
    return [ReferEvaluator(cfg, dataset_name=dataset_name, output_dir=output_dir)]


class _VPDDemo(TaskDemo):
    def build_predictor(self):
        return DensePredictor(self.cfg)


@register_demo
class DenseSemanticSegmentorDemo(_VPDDemo):
    web_title, web_prefix = "Semantic segmentation", "semseg"
    web_tab = staticmethod(web_demo.image_only_tab(web_demo.run_semseg, "Semantic segmentation"))

    def draw(self, rgb, output, metadata):
        scores = output["sem_seg"]
        if not metadata.get("stuff_classes", None):
            names = list(self.cfg.MODEL.VPD.PROMPT.CLASS_NAMES) or [f"class {i}" for i in range(scores.shape[0])]
            metadata = vpd_vis.semantic_metadata(names)
        present = len(scores.argmax(dim=0).unique())
        return vpd_vis.draw_sem_seg(rgb, scores, metadata), f"{present} classes present"


@register_demo
class DenseDepthEstimatorDemo(_VPDDemo):
    flags = ("scene",)
    web_title, web_prefix = "Depth estimation", "depth"
    web_tab = staticmethod(web_demo.depth_tab)

    def check_args(self):
        if self.cfg.MODEL.DIFFUSION.PROMPT.NAME == "SceneClassPrompt" and not self.args.scene.strip():
            raise SystemExit("this depth model is prompted with the scene class: pass --scene (e.g. living_room)")

    def inputs(self, bgr):
        return {"scene": self.args.scene.strip()} if self.args.scene.strip() else {}

    def draw(self, rgb, output, metadata):
        depth = output["depth"]
        return vpd_vis.draw_depth(rgb, depth), f"depth {float(depth.min()):.2f}-{float(depth.max()):.2f} m"


@register_demo
class DenseReferSegmentorDemo(_VPDDemo):
    flags = ("sentence",)
    web_title, web_prefix = "Referring segmentation", "refer"
    web_tab = staticmethod(web_demo.refer_tab)

    def inputs(self, bgr):
        if not self.args.sentence.strip():
            raise SystemExit("this referring-segmentation model needs --sentence \"...\"")
        return {"sentence": self.args.sentence}

    def draw(self, rgb, output, metadata):
        prob = output["ref_mask"]
        area = float((prob > 0.5).float().mean())
        return vpd_vis.draw_ref_mask(rgb, prob, self.args.sentence), f"mask covers {100 * area:.1f}%"


@register_demo
class DensePoseEstimatorDemo(_VPDDemo):
    flags = ("boxes",)
    web_title, web_prefix = "Pose estimation", "pose"
    web_tab = staticmethod(web_demo.pose_tab)

    def inputs(self, bgr):
        h, w = bgr.shape[:2]
        try:
            return {"boxes": parse_boxes(self.args.boxes, w, h)}  # none given: the whole image
        except InputError as e:
            raise SystemExit(f"--boxes: {e}") from None

    def draw(self, rgb, output, metadata):
        inst = output["instances"]
        return vpd_vis.draw_keypoints(rgb, inst, metadata, self.args.keypoint_threshold), f"{len(inst)} people"
