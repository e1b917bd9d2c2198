"""The web demo's Panoptic Narrative Grounding: a narrative in, its noun phrases found (and
editable), one coloured mask per phrase out (the runner, request handler and tab of
``PNGDemo``, ``hooks.py``)."""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ..data.datasets.shapes_world_scene import SHAPE_COLORS, SHAPES_CATEGORIES
from ..data.noun_phrases import NLTK_DATA_COMMAND, NounPhraseExtractor, TaggerUnavailableError, load_tagger
from .narrative import PNGPredictor, locate_phrases, split_phrases
from .visualization import overlay_phrase_masks, phrase_colors
from ..web.html import caption_html
from ..web.handlers import guard, session_image, status
from ..web.inputs import InputError

__all__ = ["LexiconTagger", "build_phrase_extractor", "split_phrases", "phrase_spans", "PNGRunner",
           "GroundingResult", "run_grounding", "handle_grounding", "grounding_tab"]


class LexiconTagger:
    """Penn tags from word lists: nouns (and their plural in -s) ``NN``, adjectives ``JJ``, the
    rest ``X``. The fallback when no real tagger is installed: it finds phrases built from the
    listed words only."""

    def __init__(self, nouns: Sequence[str], adjectives: Sequence[str] = ()):
        self.nouns = {w.lower() for w in nouns}
        self.adjectives = {w.lower() for w in adjectives}

    def __call__(self, tokens: List[str]) -> List[Tuple[str, str]]:
        tags = []
        for tok in tokens:
            low = tok.lower()
            if low in self.nouns or (low.endswith("s") and low[:-1] in self.nouns):
                tags.append((tok, "NN"))
            elif low in self.adjectives:
                tags.append((tok, "JJ"))
            else:
                tags.append((tok, "X"))
        return tags


def build_phrase_extractor(spec: str = "nltk") -> Tuple[NounPhraseExtractor, str]:
    """(noun-phrase extractor, a note for the page). Without the tagger's package or data (the
    demo never downloads), falls back to a :class:`LexiconTagger` of the shapes-world words."""
    try:
        return NounPhraseExtractor(load_tagger(spec)), f"Noun phrases are found by the '{spec}' tagger."
    except TaggerUnavailableError:
        names = [w for c in SHAPES_CATEGORIES for w in c["name"].split()]
        note = ("NLTK's tagger is not installed, so noun phrases are found with the shapes-world word list "
                "only; edit them freely. For any text install it with `pip install nltk` and "
                f"`{NLTK_DATA_COMMAND}`.")
        return NounPhraseExtractor(LexiconTagger(names, SHAPE_COLORS)), note


def phrase_spans(narrative: str, phrases: Sequence[str]) -> List[Tuple[int, int]]:
    """:func:`odise_ext.png.narrative.locate_phrases`, a phrase not found shown in the page
    (:class:`InputError`)."""
    try:
        return locate_phrases(narrative, phrases)
    except ValueError as e:
        raise InputError(f"{str(e)[0].upper()}{str(e)[1:]}.") from None


class PNGRunner:
    """:class:`~odise_ext.png.narrative.PNGPredictor` on the page's RGB images, returning the mask
    probabilities [P, H, W] (the same preparation as ``PNGDatasetMapper``'s test images)."""

    def __init__(self, cfg, model):
        self.predictor = PNGPredictor(cfg, model)
        self.model, self.aug = model, self.predictor.aug

    def __call__(self, rgb: np.ndarray, narrative: str, spans: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """rgb: uint8 [H, W, 3] -> mask probabilities [P, H, W]."""
        return self.predictor(np.ascontiguousarray(rgb[:, :, ::-1]), narrative, spans)["png_masks"]


@dataclass
class GroundingResult:
    drawing: np.ndarray  # uint8 RGB [H, W, 3]: every phrase's mask in its colour
    phrases: List[str]
    spans: List[Tuple[int, int]]
    colors: List[Tuple[int, int, int]]


def run_grounding(session, rgb: np.ndarray, narrative: str, phrases: Sequence[str]) -> GroundingResult:
    """Ground ``phrases`` (found in ``narrative``) in ``rgb``; :class:`InputError` for an empty
    narrative or no phrase."""
    if not (narrative or "").strip():
        raise InputError("Empty narrative: describe the image in a sentence or more.")
    if not phrases:
        raise InputError("No noun phrase to ground: the narrative has none that the tagger found; "
                         "type the phrases (';'-separated) in the phrases box.")
    spans = phrase_spans(narrative, phrases)
    with session.lock:
        masks = session.runner(rgb, narrative, spans)
    colors = phrase_colors(len(phrases))
    drawing = overlay_phrase_masks(rgb, masks.float().cpu().numpy(), colors)
    return GroundingResult(drawing, list(phrases), spans, colors)


@guard
def handle_grounding(session, extractor, path, text, phrase_text, progress):
    """-> (drawing, caption HTML, the phrases grounded, status). Without typed phrases, those
    that ``extractor`` finds in the narrative."""
    if not (text or "").strip():
        raise InputError("Empty narrative: describe the image in a sentence or more.")
    found = split_phrases(phrase_text) or extractor(text)
    _, rgb, notes = session_image(session, path, progress)
    progress(0.2, desc=f"grounding {len(found)} phrases")
    result = run_grounding(session, rgb, text, found)
    notes.append(f"{len(result.phrases)} phrases grounded.")
    return result.drawing, caption_html(text, result.spans, result.colors), "; ".join(found), status(notes)


def grounding_tab(session, p, tagger):
    """The tab's components and events (element ids start with ``p``)."""
    import gradio as gr

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
            state = gr.Markdown(elem_id=f"{p}-status")

    def extract(text):
        return "; ".join(extractor(text)) if (text or "").strip() else ""

    def ground(path, text, phrase_text, progress=gr.Progress()):
        return handle_grounding(session, extractor, path, text, phrase_text, progress)

    narrative.change(extract, narrative, phrases)
    run.click(ground, [image, narrative, phrases], [out, caption, phrases, state])
