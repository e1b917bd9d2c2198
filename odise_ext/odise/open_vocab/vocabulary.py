"""Test-time vocabularies: data, not code.

A vocabulary is an ordered list of classes, each a tuple of synonyms (the first is the display
name). It comes from a dataset's metadata (``stuff_classes``, where a class name may hold
comma-separated synonyms, as in ODISE's category lists) or from a string such as
``"cat;dog,puppy;sky"`` (classes separated by ``;``, synonyms by ``,``).
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

__all__ = ["Vocabulary", "parse_vocabulary"]


@dataclass(frozen=True)
class Vocabulary:
    classes: Tuple[Tuple[str, ...], ...]
    # Contiguous ids of the "thing" classes (the others are "stuff"); panoptic inference needs it.
    thing_ids: Tuple[int, ...] = ()

    def __post_init__(self):
        if not self.classes:
            raise ValueError("empty vocabulary: give at least one class name")
        seen = {}
        for i, syns in enumerate(self.classes):
            if not syns or any(not s for s in syns):
                raise ValueError(f"vocabulary class #{i} has an empty name: {syns!r}")
            # A synonym may be shared by two classes (ODISE's ADE-847 / PC-459 lists do that), but
            # two classes with the same names cannot be told apart.
            key = frozenset(s.lower() for s in syns)
            if key in seen:
                raise ValueError(f"vocabulary class #{i} {syns!r} duplicates class #{seen[key]}")
            seen[key] = i
        bad = [t for t in self.thing_ids if not 0 <= t < len(self.classes)]
        if bad:
            raise ValueError(f"thing ids {bad} are outside the vocabulary of {len(self.classes)} classes")

    def __len__(self):
        return len(self.classes)

    @property
    def names(self):
        """Display name of each class (its first synonym)."""
        return [syns[0] for syns in self.classes]

    def flatten(self):
        """(all synonyms in order [S], class index of each synonym [S])."""
        texts, owner = [], []
        for i, syns in enumerate(self.classes):
            texts.extend(syns)
            owner.extend([i] * len(syns))
        return texts, owner

    def seen_mask(self, train_vocabulary: "Vocabulary"):
        """A class is "seen" if any of its synonyms is a synonym of a training class (ODISE)."""
        train_names = {s.lower() for syns in train_vocabulary.classes for s in syns}
        return [any(s.lower() in train_names for s in syns) for syns in self.classes]

    @classmethod
    def from_metadata(cls, metadata):
        """From detectron2 metadata: ``stuff_classes`` holds all classes (Mask2Former convention).

        ``stuff_synonyms`` (ODISE's prompt-engineered names, one list per class), when present,
        replaces the display names.
        """
        names = metadata.get("stuff_classes", None)
        if not names:
            raise ValueError(f"metadata '{metadata.get('name', '?')}' has no stuff_classes to build a vocabulary from")
        synonyms = metadata.get("stuff_synonyms", None)
        if synonyms is not None:
            if len(synonyms) != len(names):
                raise ValueError(f"metadata '{metadata.get('name', '?')}': {len(synonyms)} stuff_synonyms for {len(names)} classes")
            classes = tuple(_split_synonyms(",".join(s) if isinstance(s, (list, tuple)) else s) for s in synonyms)
        else:
            classes = tuple(_split_synonyms(n) for n in names)
        thing_map = metadata.get("thing_dataset_id_to_contiguous_id", {}) or {}
        return cls(classes, tuple(sorted(thing_map.values())))


def _split_synonyms(name):
    syns = tuple(dict.fromkeys(s.strip() for s in name.split(",") if s.strip()))
    if not syns:
        raise ValueError(f"class name {name!r} has no synonym")
    return syns


def parse_vocabulary(text: str, thing_names: Sequence[str] = ()) -> Vocabulary:
    """Parse ``"cat;dog,puppy;sky"`` into a :class:`Vocabulary`.

    Args:
        text: classes separated by ``;``, synonyms of a class by ``,``.
        thing_names: display names of the classes that are countable things; the rest are stuff.
            If empty, every class is a thing (open-vocabulary demos mostly name objects).
    """
    if not text or not text.strip():
        raise ValueError("empty vocabulary: give classes like 'cat;dog,puppy;sky'")
    parts = [p for p in (s.strip() for s in text.split(";")) if p]
    if not parts:
        raise ValueError(f"vocabulary {text!r} holds no class name")
    classes = tuple(_split_synonyms(p) for p in parts)
    if thing_names:
        wanted = {t.lower() for t in thing_names}
        thing_ids = tuple(i for i, syns in enumerate(classes) if syns[0].lower() in wanted)
    else:
        thing_ids = tuple(range(len(classes)))
    return Vocabulary(classes, thing_ids)
