"""The web demo's open-vocabulary panoptic segmentation (ODISE): vocabulary in, panoptic
drawing, legend and segment table out (the request handler and the tab of ``ODISEDemo.web_tab``)."""
import functools
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from detectron2.data import MetadataCatalog

from .open_vocab.vocabulary import Vocabulary, parse_vocabulary
from ..utils.visualization import class_palette, draw_panoptic, vocabulary_metadata
from ..web.html import legend_html
from ..web.handlers import guard, session_image, status
from ..web.inputs import InputError

__all__ = ["THINGS_MODES", "VOCABULARY_PRESETS", "preset_vocabulary", "vocabulary_text", "web_vocabulary",
           "things_after_edit",
           "PanopticResult", "SEGMENT_COLUMNS", "run_panoptic", "handle_panoptic", "panoptic_tab"]

_CUSTOM = "(type your own)"

# How the vocabulary's classes split into things (countable: one segment per instance) and stuff.
THINGS_MODES = ("every class is a thing", "every class is stuff", "the classes listed as things")

# Preset label -> registered dataset whose metadata holds the class list (ODISE trains on COCO
# panoptic and is evaluated on ADE20K; the synonyms are ODISE's prompt-engineered ones).
VOCABULARY_PRESETS: Dict[str, str] = {
    "COCO panoptic (133 classes)": "coco_2017_val_panoptic_with_sem_seg",
    "ADE20K panoptic (150 classes)": "ade20k_panoptic_val",
}


def preset_vocabulary(dataset_name: str) -> Vocabulary:
    return Vocabulary.from_metadata(MetadataCatalog.get(dataset_name))


def vocabulary_text(vocab: Vocabulary) -> Tuple[str, str]:
    """(the ``a;b,synonym`` text of ``vocab``, its thing classes as ``;``-separated names)."""
    text = ";".join(",".join(syns) for syns in vocab.classes)
    things = ";".join(vocab.names[i] for i in vocab.thing_ids)
    return text, things


def web_vocabulary(text: str, things_mode: str, things_text: str = "") -> Vocabulary:
    """The page's vocabulary fields -> a :class:`Vocabulary`; :class:`InputError` if invalid.

    Besides what :func:`parse_vocabulary` rejects (empty text, two classes with the same
    synonyms), two classes may not share a display name (the legend could not tell them apart),
    and a listed thing class must be in the vocabulary.
    """
    if things_mode not in THINGS_MODES:
        raise InputError(f"Unknown things/stuff choice {things_mode!r}; one of {list(THINGS_MODES)}.")
    try:
        vocab = parse_vocabulary(text or "")
    except ValueError as e:
        raise InputError(f"Vocabulary: {e}.")
    seen = {}
    for i, name in enumerate(vocab.names):
        if name.lower() in seen:
            raise InputError(f"Vocabulary: class name '{name}' appears twice (classes #{seen[name.lower()] + 1} "
                             f"and #{i + 1}); each class needs its own first name.")
        seen[name.lower()] = i
    if things_mode == THINGS_MODES[0]:
        return vocab
    if things_mode == THINGS_MODES[1]:
        return Vocabulary(vocab.classes, ())
    listed = [t.strip() for t in (things_text or "").split(";") if t.strip()]
    unknown = [t for t in listed if t.lower() not in seen]
    if unknown:
        raise InputError(f"Thing classes {unknown} are not first names of vocabulary classes: remove them from "
                         f"'Thing classes', or choose '{THINGS_MODES[0]}' or '{THINGS_MODES[1]}'.")
    return Vocabulary(vocab.classes, tuple(sorted(seen[t.lower()] for t in listed)))


def things_after_edit(text: str, things_mode: str, things_text: str) -> Tuple[str, str]:
    """(things mode, thing classes) kept consistent with a vocabulary the user has just typed:
    listed thing classes that are no longer first names of the vocabulary are dropped; when none
    is left, every class becomes a thing (ODISE's demo treats user classes as things)."""
    if things_mode != THINGS_MODES[2]:
        return things_mode, things_text
    try:
        names = {n.lower() for n in parse_vocabulary(text or "").names}
    except ValueError:  # not a vocabulary yet (e.g. while typing): leave the fields alone
        return things_mode, things_text
    kept = [t.strip() for t in (things_text or "").split(";") if t.strip() and t.strip().lower() in names]
    if not kept:
        return THINGS_MODES[0], ""
    return things_mode, ";".join(kept)


@dataclass
class PanopticResult:
    drawing: np.ndarray  # uint8 RGB [H, W, 3]
    legend: List[Tuple[str, Tuple[int, int, int]]]  # (class, RGB) of the classes found
    rows: List[list]  # per segment: [id, class, "thing"/"stuff", score, area px, area %]


SEGMENT_COLUMNS = ["segment", "class", "kind", "score", "area (px)", "area (%)"]


def run_panoptic(session, rgb: np.ndarray, vocab: Vocabulary) -> PanopticResult:
    """Segment ``rgb`` (uint8 [H, W, 3]) with ``vocab``.

    The score of a segment is its class's probability averaged over the segment's pixels, where
    a pixel's class probabilities are the model's semantic output (Mask2Former's semantic
    inference: query class probabilities times mask probabilities, summed over queries)
    normalised to sum to 1 over the classes; NaN when the config turns that output off.
    """
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    with session.lock:  # one request at a time per model; the vocabulary is this call's argument
        out = session.runner(bgr, vocabulary=vocab)
    seg, info = out["panoptic_seg"]
    seg = seg.cpu().numpy()
    sem = None
    if "sem_seg" in out:
        sem = out["sem_seg"].float().cpu().numpy()
        sem = sem / np.maximum(sem.sum(axis=0, keepdims=True), 1e-12)
    drawing = draw_panoptic(rgb, seg, info, vocabulary_metadata(vocab.names))
    colors = class_palette(len(vocab))
    found = sorted({s["category_id"] for s in info})
    legend = [(vocab.names[c], colors[c]) for c in found]
    rows = []
    for s in info:
        mask = seg == s["id"]
        area = int(mask.sum())
        score = float(sem[s["category_id"]][mask].mean()) if sem is not None and area else float("nan")
        rows.append([s["id"], vocab.names[s["category_id"]], "thing" if s["isthing"] else "stuff",
                     round(score, 3), area, round(100.0 * area / seg.size, 2)])
    return PanopticResult(drawing, legend, rows)


@guard
def handle_panoptic(session, path, text, things_mode, things_text, progress):
    """-> (drawing, legend HTML, segment rows, status)."""
    _, rgb, notes = session_image(session, path, progress)
    vocabulary = web_vocabulary(text, things_mode, things_text)
    progress(0.2, desc=f"segmenting with {len(vocabulary)} classes")
    result = run_panoptic(session, rgb, vocabulary)
    notes.append(f"{len(result.rows)} segments of {len(result.legend)} classes.")
    return result.drawing, legend_html(result.legend), result.rows, status(notes)


def panoptic_tab(session, p, tagger):
    """The tab's components and events (element ids start with ``p``)."""
    import gradio as gr

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
            state = gr.Markdown(elem_id=f"{p}-status")

    def pick(name):
        if name == _CUSTOM:
            return gr.update(), gr.update(), gr.update()
        text, thing_names = vocabulary_text(presets[name]())
        return text, THINGS_MODES[2], thing_names

    def segment(path, text, things_mode, things_text, progress=gr.Progress()):
        return handle_panoptic(session, path, text, things_mode, things_text, progress)

    def edited(text, things_mode, things_text):  # typed by the user (not set by a preset)
        new_mode, new_things = things_after_edit(text, things_mode, things_text)
        return _CUSTOM, new_mode, new_things

    preset.change(pick, preset, [vocab, mode, things])
    vocab.input(edited, [vocab, mode, things], [preset, mode, things])
    run.click(segment, [image, vocab, mode, things], [out, legend, table, state])
