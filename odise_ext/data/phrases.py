"""Caption text for Panoptic Narrative Grounding: where each noun phrase sits in the caption.

Two steps, both pure text:

1. :func:`locate_utterances` finds the character span of every utterance of a narrative in its
   caption (the PNG json gives the utterances in caption order, but not their offsets).
2. :class:`CaptionTokenizer` tokenises the caption with CLIP's BPE (open_clip's
   ``SimpleTokenizer``) and returns the token span ``[start, end)`` of each phrase.

Phrase *features* are computed by the model from these spans.
"""
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

__all__ = ["CaptionTokenizer", "TokenizedCaption", "locate_utterances"]

_ALNUM = re.compile(r"\w")


def locate_utterances(caption: str, utterances: Sequence[str]) -> Optional[List[Tuple[int, int]]]:
    """Character span ``[start, end)`` of each utterance, searched left to right in ``caption``.

    Utterances must appear in order. Whitespace inside an utterance matches any run of
    whitespace in the caption and letter case is ignored, because the narratives were
    transcribed and segmented separately. Text skipped between two utterances may hold
    whitespace and punctuation only: skipping a word would mean the utterance was matched at
    a wrong, later occurrence.

    Returns:
        one ``(start, end)`` per utterance (an empty utterance gets an empty span at the
        cursor), or ``None`` when the utterances do not tile the caption this way.
    """
    spans = []
    cursor = 0
    for utt in utterances:
        words = utt.split()
        if not words:
            spans.append((cursor, cursor))
            continue
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)
        match = pattern.search(caption, cursor)
        if match is None or _ALNUM.search(caption, cursor, match.start()):
            return None
        spans.append(match.span())
        cursor = match.end()
    return spans


@dataclass
class TokenizedCaption:
    """A caption in CLIP BPE tokens, not truncated nor padded.

    Attributes:
        token_ids: LongTensor [T]: ``<start_of_text>``, the BPE ids, ``<end_of_text>``.
            T may exceed CLIP's 77-token context; truncation is the model's choice.
        spans: LongTensor [P, 2]: token span ``[start, end)`` of each phrase in ``token_ids``
            (index 0 is ``<start_of_text>``, so every start is >= 1).
    """

    token_ids: torch.Tensor
    spans: torch.Tensor


class CaptionTokenizer:
    """CLIP BPE tokenisation that keeps track of phrase boundaries.

    The caption is cut at every phrase boundary and each piece is encoded on its own; CLIP's
    BPE never merges across a word boundary, and phrase boundaries are word boundaries, so
    the concatenation equals encoding the whole caption (up to punctuation runs straddling a
    boundary) and the span of each phrase is exact by construction.
    """

    def __init__(self):
        # open_clip's package import costs seconds; only mappers that tokenise pay it.
        from open_clip.tokenizer import SimpleTokenizer

        self._bpe = SimpleTokenizer()
        self.sot_token_id = self._bpe.sot_token_id
        self.eot_token_id = self._bpe.eot_token_id

    def encode(self, text: str) -> List[int]:
        """BPE ids of ``text`` (no start/end tokens)."""
        return self._bpe.encode(text)

    def __call__(self, caption: str, phrase_char_spans: Sequence[Tuple[int, int]]) -> TokenizedCaption:
        """Tokenise ``caption`` and map each phrase's character span to its token span.

        Args:
            caption: the narrative's caption.
            phrase_char_spans: P character spans ``[start, end)`` into ``caption``, sorted and
                non-overlapping (as :func:`locate_utterances` returns them).
        """
        ids = [self.sot_token_id]
        spans = []
        cursor = 0
        for start, end in phrase_char_spans:
            if not (cursor <= start < end <= len(caption)):
                raise ValueError(
                    f"phrase character span {(start, end)} is empty, out of order or outside the "
                    f"caption of length {len(caption)}; spans must be sorted and non-overlapping"
                )
            ids += self.encode(caption[cursor:start])
            phrase_ids = self.encode(caption[start:end])
            if not phrase_ids:
                raise ValueError(f"phrase {caption[start:end]!r} has no CLIP token (whitespace only?)")
            spans.append((len(ids), len(ids) + len(phrase_ids)))
            ids += phrase_ids
            cursor = end
        ids += self.encode(caption[cursor:])
        ids.append(self.eot_token_id)
        return TokenizedCaption(
            token_ids=torch.tensor(ids, dtype=torch.long),
            spans=torch.tensor(spans, dtype=torch.long).reshape(-1, 2),
        )
