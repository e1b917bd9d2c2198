"""The Gradio page of the web demo: one tab per loaded model's task.

Handlers turn :class:`~odise_ext.web.inputs.InputError` into ``gr.Error`` (a message in the page);
the server keeps running whatever the input. Nothing is fetched from the internet: analytics are
off, the theme uses system fonts only, and no share link is made.
"""
import functools
import logging
from typing import Callable, Dict, List, Sequence

import gradio as gr

from .html import caption_html, legend_html
from .inputs import InputError, load_image
from .odise_task import SEGMENT_COLUMNS, THINGS_MODES, VOCABULARY_PRESETS, preset_vocabulary, run_panoptic, \
    vocabulary_text, web_vocabulary
from .png_task import build_phrase_extractor, run_grounding, split_phrases
from .vpd_tasks import run_depth, run_pose, run_refer, run_semseg, test_metadata
from .build import TASKS

__all__ = ["build_app", "local_theme", "handle_panoptic", "handle_grounding", "handle_image_only",
           "handle_refer", "handle_pose"]

_CUSTOM = "(type your own)"
logger = logging.getLogger(__name__)


def local_theme():
    """Gradio's default look with system fonts (the default theme loads Google fonts)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def _guard(fn: Callable) -> Callable:
    """Bad input -> ``gr.Error`` with its message; any other failure -> ``gr.Error`` naming it (the
    traceback goes to the server's log, not the page)."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False)
        except gr.Error:
            raise
        except Exception as e:
            logger.exception("web demo request failed")
            raise gr.Error(f"The model failed on this input ({type(e).__name__}: {e}).", print_exception=False)

    return functools.wraps(fn)(wrapped)


def _image(session, path, progress):
    progress(0.05, desc="reading the image")
    rgb = load_image(path, max_pixels=session.cfg.DATA.MAX_INPUT_PIXELS)
    small, notes = session.fit(rgb)
    return rgb.shape[:2], small, notes


def _status(notes: Sequence[str]) -> str:
    return "\n\n".join(n for n in notes if n)


# ---- request handlers: (session, page inputs..., progress) -> page outputs ---------------------
@_guard
def handle_panoptic(session, path, text, things_mode, things_text, progress):
    """-> (drawing, legend HTML, segment rows, status)."""
    _, rgb, notes = _image(session, path, progress)
    vocabulary = web_vocabulary(text, things_mode, things_text)
    progress(0.2, desc=f"segmenting with {len(vocabulary)} classes")
    result = run_panoptic(session, rgb, vocabulary)
    notes.append(f"{len(result.rows)} segments of {len(result.legend)} classes.")
    return result.drawing, legend_html(result.legend), result.rows, _status(notes)


@_guard
def handle_grounding(session, extractor, path, text, phrase_text, progress):
    """-> (drawing, caption HTML, the phrases grounded, status). Without typed phrases, those
    that ``extractor`` finds in the narrative."""
    if not (text or "").strip():
        raise InputError("Empty narrative: describe the image in a sentence or more.")
    found = split_phrases(phrase_text) or extractor(text)
    _, rgb, notes = _image(session, path, progress)
    progress(0.2, desc=f"grounding {len(found)} phrases")
    result = run_grounding(session, rgb, text, found)
    notes.append(f"{len(result.phrases)} phrases grounded.")
    return result.drawing, caption_html(text, result.spans, result.colors), "; ".join(found), _status(notes)


@_guard
def handle_image_only(session, run_fn, path, progress):
    """Semantic segmentation / depth: -> (drawing, status)."""
    _, rgb, notes = _image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_fn(session, rgb)
    return drawing, _status(notes + [summary])


@_guard
def handle_refer(session, path, text, progress):
    """-> (drawing, status)."""
    if not (text or "").strip():
        raise InputError("Empty sentence: describe the object to segment, e.g. 'the red circle on the left'.")
    _, rgb, notes = _image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_refer(session, rgb, text)
    return drawing, _status(notes + [summary])


@_guard
def handle_pose(session, path, text, threshold, progress):
    """-> (drawing, status)."""
    size, rgb, notes = _image(session, path, progress)
    progress(0.2, desc="running the model")
    drawing, summary = run_pose(session, rgb, text, original_size=size, keypoint_threshold=float(threshold))
    return drawing, _status(notes + [summary])


# ---- one builder per task: (session, element id prefix, noun-phrase tagger spec) -> None; adds the
# tab's components and their events -------------------------------------------------------------
def _panoptic_tab(session, p, tagger):
    # label -> vocabulary (built on demand: the presets' metadata is read only when picked)
    own = session.model.test_vocabulary
    presets = {f"The model's test vocabulary ({len(own)} classes)": lambda: own}
    presets.update({label: functools.partial(preset_vocabulary, ds) for label, ds in VOCABULARY_PRESETS.items()})
    default = next(iter(presets))
    default_text, default_things = vocabulary_text(own)
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            preset = gr.Dropdown([_CUSTOM, *presets], value=default, label="Vocabulary preset")
            vocab = gr.Textbox(default_text, label="Vocabulary: classes separated by ';', synonyms by ','",
                               placeholder="cat;dog,puppy;sky", lines=2, elem_id=f"{p}-vocab")
            mode = gr.Radio(list(THINGS_MODES), value=THINGS_MODES[2] if default_things else THINGS_MODES[0],
                            label="Things (one segment per object) and stuff (one per class)")
            things = gr.Textbox(default_things, label="Thing classes (first names, ';'-separated)",
                                elem_id=f"{p}-things")
            run = gr.Button("Segment", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="Panoptic segmentation", type="numpy", format="png", elem_id=f"{p}-output")
            legend = gr.HTML(elem_id=f"{p}-legend")
            table = gr.Dataframe(headers=SEGMENT_COLUMNS, label="Segments (score: class probability averaged "
                                 "over the segment)", interactive=False, elem_id=f"{p}-segments")
            status = gr.Markdown(elem_id=f"{p}-status")

    def pick(name):
        if name == _CUSTOM:
            return gr.update(), gr.update(), gr.update()
        text, thing_names = vocabulary_text(presets[name]())
        return text, THINGS_MODES[2], thing_names

    def segment(path, text, things_mode, things_text, progress=gr.Progress()):
        return handle_panoptic(session, path, text, things_mode, things_text, progress)

    preset.change(pick, preset, [vocab, mode, things])
    run.click(segment, [image, vocab, mode, things], [out, legend, table, status])


def _grounding_tab(session, p, tagger):
    extractor, tagger_note = build_phrase_extractor(tagger)
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            narrative = gr.Textbox(label="Narrative", lines=3, elem_id=f"{p}-narrative",
                                   placeholder="In this image we can see a red circle on the grass and the sky.")
            phrases = gr.Textbox(label="Noun phrases (found in the narrative; edit freely, ';'-separated)",
                                 elem_id=f"{p}-phrases")
            gr.Markdown(tagger_note)
            run = gr.Button("Ground", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="One mask per phrase", type="numpy", format="png", elem_id=f"{p}-output")
            caption = gr.HTML(elem_id=f"{p}-caption")
            status = gr.Markdown(elem_id=f"{p}-status")

    def extract(text):
        return "; ".join(extractor(text)) if (text or "").strip() else ""

    def ground(path, text, phrase_text, progress=gr.Progress()):
        return handle_grounding(session, extractor, path, text, phrase_text, progress)

    narrative.change(extract, narrative, phrases)
    run.click(ground, [image, narrative, phrases], [out, caption, phrases, status])


def _image_only_tab(run_fn, output_label):
    def build(session, p, tagger):
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
                run = gr.Button("Run", variant="primary", elem_id=f"{p}-run")
            with gr.Column():
                out = gr.Image(label=output_label, type="numpy", format="png", elem_id=f"{p}-output")
                status = gr.Markdown(elem_id=f"{p}-status")

        def predict(path, progress=gr.Progress()):
            return handle_image_only(session, run_fn, path, progress)

        run.click(predict, image, [out, status])

    return build


def _refer_tab(session, p, tagger):
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id=f"{p}-image")
            sentence = gr.Textbox(label="Referring expression", elem_id=f"{p}-sentence",
                                  placeholder="the red circle on the left")
            run = gr.Button("Segment", variant="primary", elem_id=f"{p}-run")
        with gr.Column():
            out = gr.Image(label="Referred object", type="numpy", format="png", elem_id=f"{p}-output")
            status = gr.Markdown(elem_id=f"{p}-status")

    def predict(path, text, progress=gr.Progress()):
        return handle_refer(session, path, text, progress)

    run.click(predict, [image, sentence], [out, status])


def _pose_tab(session, p, tagger):
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
            status = gr.Markdown(f"Keypoints: {', '.join(names)}" if names else "", elem_id=f"{p}-status")

    def predict(path, text, thr, progress=gr.Progress()):
        return handle_pose(session, path, text, thr, progress)

    run.click(predict, [image, boxes, threshold], [out, status])


# META_ARCHITECTURE -> (tab builder, element id prefix)
TABS: Dict[str, tuple] = {
    "ODISE": (_panoptic_tab, "odise"),
    "PNGDiffusion": (_grounding_tab, "png"),
    "VPDSemanticSegmentor": (_image_only_tab(run_semseg, "Semantic segmentation"), "semseg"),
    "VPDDepthEstimator": (_image_only_tab(run_depth, "Depth (near = bright)"), "depth"),
    "VPDReferSegmentor": (_refer_tab, "refer"),
    "VPDPoseEstimator": (_pose_tab, "pose"),
}


def build_app(sessions: List, tagger: str = "nltk") -> gr.Blocks:
    """The page for loaded sessions (one tab each; two sessions of one task get numbered ids)."""
    with gr.Blocks(title="odise-ext web demo", analytics_enabled=False) as app:
        gr.Markdown("# odise-ext web demo")
        used: Dict[str, int] = {}
        with gr.Tabs():
            for session in sessions:
                builder, prefix = TABS[session.task]
                used[prefix] = used.get(prefix, 0) + 1
                p = prefix if used[prefix] == 1 else f"{prefix}{used[prefix]}"
                with gr.Tab(TASKS[session.task][0], elem_id=f"{p}-tab"):
                    gr.Markdown(f"Config `{session.config_file}`. {session.weights_note} "
                                f"Test-time resize: {session.resize_note}.", elem_id=f"{p}-about")
                    builder(session, p, tagger)
    return app
