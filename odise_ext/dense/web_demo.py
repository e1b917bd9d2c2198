"""The web demo's dense tasks: semantic segmentation, depth (with a colour bar and the metric
range), referring segmentation and pose. Each ``run_*`` takes a
:class:`~odise_ext.web.session.DemoSession` and a uint8 RGB image [H, W, 3] and returns
(drawing uint8 RGB, summary text); the ``handle_*`` request handlers and the tab builders (the
demo entries' ``web_tab``, ``hooks.py``) sit on top of them."""
from typing import Tuple

import numpy as np
from detectron2.data import Metadata, MetadataCatalog

from . import visualization as vpd_vis
from .depth_vis import colorize_depth, depth_colorbar as _depth_colorbar
from ..utils.visualization import side_by_side
from ..web.handlers import guard, session_image, status
from ..utils.input_checks import InputError
from .person_crops import parse_boxes

__all__ = ["test_metadata", "run_semseg", "run_depth", "depth_colorbar", "run_refer", "run_pose",
           "handle_image_only", "handle_refer", "handle_pose", "image_only_tab", "depth_tab", "refer_tab", "pose_tab",
           "scene_prompted"]

DEPTH_CMAP = "magma_r"  # vpd_vis.draw_depth's: near = bright


def test_metadata(cfg) -> Metadata:
    """Class / keypoint names of the config's first test dataset (empty without one)."""
    return MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else Metadata(name="web_demo")


def _bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def run_semseg(session, rgb: np.ndarray) -> Tuple[np.ndarray, str]:
    with session.lock:
        scores = session.runner(_bgr(rgb))["sem_seg"]
    meta = test_metadata(session.cfg)
    names = meta.get("stuff_classes", None) or list(session.cfg.MODEL.VPD.PROMPT.CLASS_NAMES)
    names = names or [f"class {i}" for i in range(scores.shape[0])]
    drawing = vpd_vis.draw_sem_seg(rgb, scores, vpd_vis.semantic_metadata(names))
    labels, counts = np.unique(scores.argmax(dim=0).cpu().numpy(), return_counts=True)
    present = ", ".join(f"{names[i]} ({100.0 * c / counts.sum():.1f}%)" for i, c in zip(labels, counts))
    return drawing, f"Classes present: {present}."


def depth_colorbar(lo: float, hi: float, width: int) -> np.ndarray:
    """One colour bar [h, width, 3] from ``lo`` to ``hi`` metres (:func:`dense.depth_vis.depth_colorbar`)."""
    return _depth_colorbar(lo, hi, width, cmap=DEPTH_CMAP)


def scene_prompted(cfg) -> bool:
    """Whether the depth model is prompted with the image's scene class (VPD's NYUv2 model)."""
    return cfg.MODEL.DIFFUSION.PROMPT.NAME == "SceneClassPrompt"


def run_depth(session, rgb: np.ndarray, scene: str = "") -> Tuple[np.ndarray, str]:
    """Colour-mapped depth (this image's range, near bright) beside the image, a colour bar with
    the metric range underneath. ``scene``: the scene class of a scene-prompted model (default:
    the first of ``MODEL.VPD.PROMPT.SCENE_CLASSES``, said in the summary)."""
    note = ""
    inputs = {}
    if scene_prompted(session.cfg):
        classes = list(session.cfg.MODEL.VPD.PROMPT.SCENE_CLASSES)
        scene = (scene or "").strip()
        if not scene:
            scene, note = classes[0], f" Scene class: {classes[0]} (none given)."
        inputs["scene"] = scene
    with session.lock:
        try:
            depth = session.runner(_bgr(rgb), **inputs)["depth"].float().cpu().numpy()
        except ValueError as e:  # an unknown scene class: the message lists the known ones
            if "scene" in str(e):
                raise InputError(str(e)) from None
            raise
    ok = np.isfinite(depth) & (depth > 0)
    if not ok.any():
        raise InputError("The model predicted no positive depth for this image.")
    lo, hi = float(depth[ok].min()), float(depth[ok].max())
    colored = colorize_depth(depth, vmin=lo, vmax=hi, cmap=DEPTH_CMAP)
    top = side_by_side(rgb, colored)
    drawing = np.concatenate([top, depth_colorbar(lo, hi, top.shape[1])], 0)
    cap = session.cfg.MODEL.DEPTH_HEAD.MAX_DEPTH
    return drawing, f"Depth range {lo:.2f} m to {hi:.2f} m (the model predicts at most {cap:g} m).{note}"


def run_refer(session, rgb: np.ndarray, sentence: str) -> Tuple[np.ndarray, str]:
    if not (sentence or "").strip():
        raise InputError("Empty sentence: describe the object to segment, e.g. 'the red circle on the left'.")
    with session.lock:
        prob = session.runner(_bgr(rgb), sentence=sentence.strip())["ref_mask"]
    area = float((prob > 0.5).float().mean())
    return vpd_vis.draw_ref_mask(rgb, prob, sentence.strip()), f"The mask covers {100 * area:.1f}% of the image."


def run_pose(session, rgb: np.ndarray, boxes_text: str, original_size=None,
             keypoint_threshold: float = 0.05) -> Tuple[np.ndarray, str]:
    """``boxes_text``: person boxes 'x0,y0,x1,y1;...' in pixels of the uploaded image of
    ``original_size`` (h, w) (default: ``rgb``'s size; ``rgb`` may be a shrunk copy)."""
    h, w = original_size or rgb.shape[:2]
    boxes = parse_boxes(boxes_text, w, h) * np.array([rgb.shape[1] / w, rgb.shape[0] / h] * 2, np.float32)
    with session.lock:
        inst = session.runner(_bgr(rgb), boxes=boxes)["instances"]
    drawing = vpd_vis.draw_keypoints(rgb, inst, test_metadata(session.cfg), keypoint_threshold)
    return drawing, f"{len(inst)} box(es); keypoints with a score under {keypoint_threshold} are not drawn."


# ---- request handlers: (session, page inputs..., progress) -> page outputs ---------------------
@guard
def handle_image_only(session, run_fn, path, progress):
    """Semantic segmentation / depth: -> (drawing, status)."""
    _, rgb, notes = session_image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_fn(session, rgb)
    return drawing, status(notes + [summary])


@guard
def handle_refer(session, path, text, progress):
    """-> (drawing, status)."""
    if not (text or "").strip():
        raise InputError("Empty sentence: describe the object to segment, e.g. 'the red circle on the left'.")
    _, rgb, notes = session_image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_refer(session, rgb, text)
    return drawing, status(notes + [summary])


@guard
def handle_pose(session, path, text, threshold, progress):
    """-> (drawing, status)."""
    size, rgb, notes = session_image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_pose(session, rgb, text, original_size=size, keypoint_threshold=float(threshold))
    return drawing, status(notes + [summary])


# ---- tabs: (session, element id prefix, noun-phrase tagger spec) -> None; add the components ---
def image_only_tab(run_fn, output_label):
    def build(session, p, tagger):
        import gradio as gr

        with gr.Row():
            with gr.Column():
                image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
                run = gr.Button("Run", variant="primary", elem_id=f"{p}-run")
            with gr.Column():
                out = gr.Image(label=output_label, type="numpy", format="png", elem_id=f"{p}-output")
                state = gr.Markdown(elem_id=f"{p}-status")

        def predict(path, progress=gr.Progress()):
            return handle_image_only(session, run_fn, path, progress)

        run.click(predict, image, [out, state])

    return build


def depth_tab(session, p, tagger):
    import gradio as gr

    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            scene = gr.Textbox(label="Scene class (this model is prompted with it)", elem_id=f"{p}-scene",
                               value=list(session.cfg.MODEL.VPD.PROMPT.SCENE_CLASSES)[0],
                               visible=scene_prompted(session.cfg))
            run = gr.Button("Run", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="Depth (near = bright)", type="numpy", format="png", elem_id=f"{p}-output")
            state = gr.Markdown(elem_id=f"{p}-status")

    def predict(path, scene_text, progress=gr.Progress()):
        return handle_image_only(session, lambda s, rgb: run_depth(s, rgb, scene_text), path, progress)

    run.click(predict, [image, scene], [out, state])


def refer_tab(session, p, tagger):
    import gradio as gr

    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            sentence = gr.Textbox(label="Referring expression", elem_id=f"{p}-sentence",
                                  placeholder="the red circle on the left")
            run = gr.Button("Segment", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="Referred object", type="numpy", format="png", elem_id=f"{p}-output")
            state = gr.Markdown(elem_id=f"{p}-status")

    def predict(path, text, progress=gr.Progress()):
        return handle_refer(session, path, text, progress)

    run.click(predict, [image, sentence], [out, state])


def pose_tab(session, p, tagger):
    import gradio as gr

    names = test_metadata(session.cfg).get("keypoint_names", None) or ()
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            boxes = gr.Textbox(label="Boxes x0,y0,x1,y1;... in image pixels (empty: the whole image)",
                               elem_id=f"{p}-boxes")
            threshold = gr.Slider(0.0, 1.0, value=0.05, step=0.01, label="Lowest keypoint score drawn")
            run = gr.Button("Estimate", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="Keypoints", type="numpy", format="png", elem_id=f"{p}-output")
            state = gr.Markdown(f"Keypoints: {', '.join(names)}" if names else "", elem_id=f"{p}-status")

    def predict(path, text, thr, progress=gr.Progress()):
        return handle_pose(session, path, text, thr, progress)

    run.click(predict, [image, boxes, threshold], [out, state])
