"""Vocabulary presets of ``tools/demo.py --label`` (ODISE's demo ``--label`` sets).

Each preset is a vocabulary string in :func:`~odise_ext.odise.open_vocab.vocabulary.parse_vocabulary`'s
syntax (classes by ``;``, synonyms by ``,``; the first synonym is the displayed name) and its
thing classes, built from the class lists in ``odise_ext/data/datasets/categories``:

- ``coco``: COCO panoptic's 133 classes (ODISE's synonyms; things: detectron2's ``isthing``);
- ``ade20k``: ADE20K-150 (things: its instance classes).

LVIS is not available: the project ships no LVIS class list, so ``--label lvis`` is an error
that says so.
"""
from typing import List, Tuple

__all__ = ["PRESETS", "merge_vocabulary", "preset_vocabulary"]

PRESETS = ("coco", "ade20k")


def _join(synonym_lists) -> str:
    return ";".join(",".join(s) for s in synonym_lists)


def preset_vocabulary(name: str) -> Tuple[str, List[str]]:
    """(vocabulary string, thing class names) of preset ``name``."""
    from ..data.datasets.categories import ADE20K_150_CATEGORIES, COCO_PANOPTIC_SYNONYMS

    if name == "coco":
        from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

        things = {c["id"] for c in COCO_CATEGORIES if c["isthing"]}
        ids = sorted(COCO_PANOPTIC_SYNONYMS)
        return _join(COCO_PANOPTIC_SYNONYMS[i] for i in ids), [COCO_PANOPTIC_SYNONYMS[i][0] for i in ids if i in things]
    if name == "ade20k":
        cats = ADE20K_150_CATEGORIES
        return _join(c["synonyms"] for c in cats), [c["synonyms"][0] for c in cats if c["isthing"]]
    if name == "lvis":
        raise ValueError("--label lvis: no LVIS class list ships with odise-ext; pass the classes with --vocab")
    raise ValueError(f"--label {name!r}: unknown preset; known: {', '.join(PRESETS)}")


def merge_vocabulary(labels: List[str], vocab: str, things: str) -> Tuple[str, str]:
    """``--label`` presets followed by the ``--vocab`` classes -> (vocabulary, things) strings.

    The preset classes keep their thing / stuff split; every ``--vocab`` class is a thing unless
    ``--things`` names some of them (then only those)."""
    parts, thing_names = [], []
    for name in labels:
        text, preset_things = preset_vocabulary(name)
        parts.append(text)
        thing_names += preset_things
    if vocab.strip():
        parts.append(vocab.strip().strip(";"))
        given = [t.strip() for t in things.split(";") if t.strip()]
        extra = [p.split(",")[0].strip() for p in vocab.split(";") if p.strip()]
        thing_names += given or extra
    return ";".join(parts), ";".join(thing_names)
