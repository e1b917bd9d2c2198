"""The web demo's Panoptic Narrative Grounding: a narrative in, its noun phrases found (and
editable), one coloured mask per phrase out (the runner, request handler and tab of
``PNGDemo``, ``hooks.py``)."""
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import transforms as T

from ..data.datasets.shapes_world_scene import SHAPE_COLORS, SHAPES_CATEGORIES
from ..data.noun_phrases import NLTK_DATA_COMMAND, NounPhraseExtractor, TaggerUnavailableError, load_tagger
from ..data.phrases import CaptionTokenizer
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


def split_phrases(text: str) -> List[str]:
    """';'-separated phrases from the page (blank ones dropped, order kept)."""
    return [p.strip() for p in (text or "").split(";") if p.strip()]


def phrase_spans(narrative: str, phrases: Sequence[str]) -> List[Tuple[int, int]]:
    """Character span of each phrase in the narrative, searched left to right (case ignored,
    any whitespace between words). :class:`InputError` when a phrase is not found in order."""
    spans, cursor = [], 0
    for phrase in phrases:
        pattern = r"\s+".join(re.escape(w) for w in phrase.split())
        match = re.compile(r"(?<!\w)" + pattern + r"(?!\w)", re.IGNORECASE).search(narrative, cursor)
        if match is None:
            raise InputError(f"Phrase '{phrase}' is not in the narrative (after the previous phrase); "
                             "phrases must be words of the narrative, in order.")
        spans.append(match.span())
        cursor = match.end()
    return spans


class PNGRunner:
    """``PNGDiffusion`` on one image and narrative, prepared as ``PNGDatasetMapper`` prepares
    test images: a fixed square resize to ``DATA.PNG.IMAGE_SIZE``, the caption in CLIP BPE
    tokens with each phrase's token span."""

    def __init__(self, cfg, model):
        self.model = model
        size = cfg.DATA.PNG.IMAGE_SIZE
        self.aug = T.Resize((size, size))
        self.input_format = cfg.INPUT.FORMAT
        self.tokenizer = CaptionTokenizer()

    def __call__(self, rgb: np.ndarray, narrative: str, spans: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """rgb: uint8 [H, W, 3] -> mask probabilities [P, H, W]."""
        image = rgb if self.input_format == "RGB" else rgb[:, :, ::-1]
        image = self.aug.get_transform(image).apply_image(image)
        tokens = self.tokenizer(narrative, spans)
        inputs = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": rgb.shape[0],
            "width": rgb.shape[1],
            "caption_tokens": tokens.token_ids,
            "phrase_token_spans": tokens.spans,
        }
        with torch.no_grad():
            return self.model([inputs])[0]["png_masks"]


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
