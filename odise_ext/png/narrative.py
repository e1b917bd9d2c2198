"""A user's narrative and phrases as PNG model inputs, for the command-line demo.

The PNG datasets give each narrative's grounded phrases (utterances) with the annotations; a
user gives a narrative and, optionally, its phrases (``"a dog;the grass"``). Without phrases,
they are the narrative's noun phrases (:mod:`odise_ext.data.noun_phrases`: NLTK's tagger when
installed, else a word list of the embedded shapes world). Each phrase is then located in the
narrative, in order, as :func:`odise_ext.data.phrases.locate_utterances` locates utterances.
"""
import re
from typing import List, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.modeling import build_model

from ..data.noun_phrases import NLTK_DATA_COMMAND, NounPhraseExtractor, TaggerUnavailableError, load_tagger
from ..data.phrases import CaptionTokenizer
from ..engine.safe_checkpoint import SafeCheckpointer
from ..engine.weights_file import check_weights_file

__all__ = ["WordListTagger", "find_noun_phrases", "split_phrases", "locate_phrases", "PNGPredictor"]


class WordListTagger:
    """Penn tags from word lists: listed nouns (and their plural in -s) ``NN``, listed adjectives
    ``JJ``, every other token ``X`` (so only phrases of listed words are found)."""

    def __init__(self, nouns: Sequence[str], adjectives: Sequence[str] = ()):
        self.nouns = {w.lower() for w in nouns}
        self.adjectives = {w.lower() for w in adjectives}

    def __call__(self, tokens: List[str]) -> List[Tuple[str, str]]:
        def tag(tok):
            low = tok.lower()
            if low in self.nouns or (low.endswith("s") and low[:-1] in self.nouns):
                return "NN"
            return "JJ" if low in self.adjectives else "X"

        return [(tok, tag(tok)) for tok in tokens]


def find_noun_phrases(narrative: str) -> Tuple[List[str], str]:
    """(noun phrases of ``narrative`` in order, a note on how they were found)."""
    try:
        return NounPhraseExtractor(load_tagger("nltk"))(narrative), "noun phrases found by NLTK's tagger"
    except TaggerUnavailableError:
        from ..data.datasets.shapes_world_scene import SHAPE_COLORS, SHAPES_CATEGORIES

        nouns = [w for c in SHAPES_CATEGORIES for w in c["name"].split()]
        note = (f"NLTK's tagger is not installed: noun phrases of shapes-world words only (`pip install nltk`, "
                f"`{NLTK_DATA_COMMAND}` for any text, or give --phrases)")
        return NounPhraseExtractor(WordListTagger(nouns, SHAPE_COLORS))(narrative), note


def split_phrases(text: str) -> List[str]:
    """';'-separated phrases (blank ones dropped, order kept)."""
    return [p.strip() for p in (text or "").split(";") if p.strip()]


def locate_phrases(narrative: str, phrases: Sequence[str]) -> List[Tuple[int, int]]:
    """Character span ``[start, end)`` of each phrase, searched left to right as whole words
    (case ignored, any whitespace between words). ``ValueError`` naming a phrase not found."""
    spans, cursor = [], 0
    for phrase in phrases:
        words = r"\s+".join(re.escape(w) for w in phrase.split())
        match = re.compile(r"(?<!\w)" + words + r"(?!\w)", re.IGNORECASE).search(narrative, cursor)
        if match is None:
            where = "in the narrative" if cursor == 0 else f"in the narrative after {narrative[:cursor]!r}"
            raise ValueError(f"phrase {phrase!r} is not {where}; phrases must be words of the narrative, in order")
        spans.append(match.span())
        cursor = match.end()
    return spans


class PNGPredictor:
    """``PNGDiffusion`` on one image and narrative, prepared as ``PNGDatasetMapper`` prepares test
    images: a square resize to ``DATA.PNG.IMAGE_SIZE`` (bilinear), the narrative in CLIP BPE
    tokens with each phrase's token span. Weights from ``MODEL.WEIGHTS``."""

    def __init__(self, cfg, model=None):
        """``model``: an already built and loaded ``PNGDiffusion`` (the web demo's); None builds
        one and loads ``MODEL.WEIGHTS``."""
        if model is None:
            check_weights_file(cfg.MODEL.WEIGHTS)  # named before the model is built
            model = build_model(cfg).eval()
            if cfg.MODEL.WEIGHTS:
                SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        self.model = model
        size = cfg.DATA.PNG.IMAGE_SIZE
        self.aug = T.Resize((size, size))
        self.input_format = cfg.INPUT.FORMAT
        self.tokenizer = CaptionTokenizer()

    def __call__(self, bgr: np.ndarray, narrative: str, spans: Sequence[Tuple[int, int]]) -> dict:
        """bgr: uint8 [H, W, 3] -> ``{"png_masks": [P, H, W] probabilities}``."""
        image = bgr if self.input_format == "BGR" else bgr[:, :, ::-1]
        image = self.aug.get_transform(image).apply_image(np.ascontiguousarray(image))
        tokens = self.tokenizer(narrative, spans)
        inputs = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": bgr.shape[0],
            "width": bgr.shape[1],
            "caption_tokens": tokens.token_ids,
            "phrase_token_spans": tokens.spans,
        }
        with torch.no_grad():
            return self.model([inputs])[0]
