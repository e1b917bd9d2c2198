"""Language annotations of a shapes-world scene: captions, PNG narratives, referring expressions.

All text comes from templates, so every noun phrase (and the segments it refers to) is known
exactly rather than parsed back out of the sentence.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .shapes_world_scene import Scene, Segment

__all__ = ["image_captions", "image_narratives", "image_refs"]

_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
# A noun phrase and the thing/stuff segments it denotes.
Phrase = Tuple[str, List[Segment]]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _counted(words: str, count: int) -> str:
    """'a red circle' / 'two red circles' (every class and colour word has a regular plural)."""
    if count == 1:
        return f"{_article(words)} {words}"
    return f"{_NUMBER_WORDS[count]} {words}s"


def _group(things: Sequence[Segment], with_color: bool) -> List[Phrase]:
    """One phrase per (colour,) shape group, in order of first appearance."""
    groups: Dict[str, List[Segment]] = {}
    for seg in things:
        words = f"{seg.shape.color} {seg.name}" if with_color else seg.name
        groups.setdefault(words, []).append(seg)
    return [(_counted(words, len(segs)), segs) for words, segs in groups.items()]


def _stuff_phrases(scene: Scene) -> List[Phrase]:
    return [(f"the {seg.name}", [seg]) for seg in scene.stuff]


def _count_phrase(things: Sequence[Segment]) -> Phrase:
    return (_counted("shape", len(things)), list(things))


def _join(texts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(texts) <= 1:
        return "".join(texts)
    return ", ".join(texts[:-1]) + " and " + texts[-1]


def image_captions(scene: Scene) -> List[Tuple[str, List[str]]]:
    """Five COCO-style captions of a scene, each with its noun phrases in order of appearance."""
    things = scene.things
    colored = _group(things, with_color=True)
    shaped = _group(things, with_color=False)
    reverse = _group(things[::-1], with_color=True)
    stuff = _stuff_phrases(scene)
    count = [_count_phrase(things)]
    templates: List[Tuple[str, List[Phrase], List[Phrase]]] = [
        ("{a} in front of {b}.", colored, stuff),
        ("{a} behind {b}.", stuff, colored),
        ("{a} over {b}.", shaped, stuff),
        ("{a} with {b}.", count, stuff),
        ("{a} with {b}.", stuff, reverse),
    ]
    captions = []
    for template, first, second in templates:
        a, b = _join([p for p, _ in first]), _join([p for p, _ in second])
        # Every stuff region hidden by shapes: no relation to state.
        text = template.format(a=a, b=b) if a and b else f"{a or b}."
        captions.append((text, [p for p, _ in first + second]))
    return captions


def _utterance(text: str, segments: Optional[List[Segment]]) -> Dict[str, object]:
    """One PNG segment; ``segments=None`` marks a non-noun utterance (no ids)."""
    ids = [str(s.id) for s in segments or []]
    return {"utterance": text, "segment_ids": ids, "plural": len(ids) >= 2,
            "noun": segments is not None}


def _interleave(phrases: Sequence[Phrase], word: str = "and") -> List[Dict[str, object]]:
    out = []
    for k, (text, segs) in enumerate(phrases):
        if k:
            out.append(_utterance(word, None))
        out.append(_utterance(text, segs))
    return out


def _narrative(image_id: int, annotator_id: int, segments: List[Dict[str, object]]) -> Dict:
    caption = " ".join(s["utterance"] for s in segments)
    return {"image_id": str(image_id), "annotator_id": annotator_id, "caption": caption,
            "segments": segments}


def image_narratives(scene: Scene, image_id: int) -> List[Dict[str, object]]:
    """PNG narratives (``png_coco_{split}2017.json`` schema): one per scene, plus a second one
    with shape-only and counting phrases when there are at least two shapes."""
    things = scene.things
    stuff = _stuff_phrases(scene)
    # "this image" is a noun that grounds to nothing: such phrases exist in the official data
    # and must be skipped by the evaluation.
    first = [_utterance("in", None), _utterance("this image", []), _utterance("we can see", None)]
    first += _interleave(_group(things, with_color=True))
    if stuff:
        first += [_utterance("in front of", None)] + _interleave(stuff)
    narratives = [_narrative(image_id, 1, first)]
    if len(things) >= 2:
        second = _interleave(_group(things, with_color=False))
        if stuff:
            second += [_utterance("in front of", None)] + _interleave(stuff)
        second += [_utterance("so there are", None), _utterance(*_count_phrase(things))]
        narratives.append(_narrative(image_id, 2, second))
    return narratives


def _horizontal_position(seg: Segment, width: int) -> str:
    x = float(np.nonzero(seg.mask)[1].mean()) + 0.5
    if x < width / 3:
        return "on the left"
    return "on the right" if x > 2 * width / 3 else "in the middle"


def image_refs(
    scene: Scene, image_id: int, ann_ids: Sequence[Optional[int]]
) -> List[Dict[str, object]]:
    """Referring expressions (refcoco-style records), one per thing. ``ann_ids[k]`` is the
    instances annotation id of ``scene.segments[k]``. The first sentence is unambiguous within
    the image; the second is a short position description."""
    width = scene.segment_map.shape[1]
    by_words: Dict[str, List[Segment]] = {}
    for seg in scene.things:
        by_words.setdefault(f"{seg.shape.color} {seg.name}", []).append(seg)
    refs = []
    for seg, ann_id in zip(scene.segments, ann_ids):
        if seg.shape is None:
            continue
        words = f"{seg.shape.color} {seg.name}"
        same = by_words[words]
        if len(same) == 1:
            unique = f"the {words}"
        else:  # rank among look-alikes by the centre of mass of the visible pixels
            xs = [float(np.nonzero(s.mask)[1].mean()) for s in same]
            order = sorted(range(len(same)), key=lambda k: (xs[k], k))
            rank = order.index(next(k for k, s in enumerate(same) if s is seg))
            unique = f"the {_ORDINALS[rank]} {words} from the left"
        refs.append({
            "ref_id": ann_id,
            "ann_id": ann_id,
            "image_id": image_id,
            "category_id": seg.category_id,
            "sentences": [
                {"sent": unique},
                {"sent": f"{words} {_horizontal_position(seg, width)}"},
            ],
        })
    return refs
