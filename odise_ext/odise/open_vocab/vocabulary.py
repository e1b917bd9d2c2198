"""Test-time vocabularies: data, not code.

A vocabulary is an ordered list of classes, each a tuple of synonyms (the first is the display
name). It comes from a dataset's metadata (``stuff_classes``, where a class name may hold
comma-separated synonyms, as in ODISE's category lists) or from a string such as
``"cat;dog,puppy;sky"`` (classes separated by ``;``, synonyms by ``,``).
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

__all__ = ["Vocabulary", "dataset_vocabulary", "match_classes", "parse_vocabulary"]


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
        """A class is "seen" if any of its synonyms is a synonym of a training class.

        Strings are compared exactly (case and spaces included), as ODISE's CLIP head does
        (``not set(train_names).isdisjoint(test_synonyms)``): "Dog" is not seen when training
        had "dog". The class's fusion weight (alpha or beta) depends on this.
        """
        train_names = {s for syns in train_vocabulary.classes for s in syns}
        return [not train_names.isdisjoint(syns) for syns in self.classes]

    def with_things_from(self, dataset: "Vocabulary") -> "Vocabulary":
        """A copy whose classes that name a class of ``dataset`` (see :func:`match_classes`; an
        ambiguous name counts as no match) take that class's thing / stuff flag; the others
        keep theirs."""
        match = match_classes(self, dataset, strict=False)
        dataset_things = set(dataset.thing_ids)
        things = tuple(
            i for i, j in enumerate(match) if (j in dataset_things if j is not None else i in self.thing_ids)
        )
        return Vocabulary(self.classes, things)

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


def dataset_vocabulary(metadata) -> Vocabulary:
    """Every name of every class of a dataset (for matching names, not for prompting).

    The classes are ``stuff_classes`` (all classes, in contiguous order) or, for instance-only
    metadata, ``thing_classes``; each holds its ``stuff_synonyms`` and the comma-separated names
    of its class name. Thing flags come from ``thing_dataset_id_to_contiguous_id``.
    """
    if metadata.get("stuff_classes", None):
        vocab = Vocabulary.from_metadata(metadata)
        raw = metadata.stuff_classes
    elif metadata.get("thing_classes", None):
        raw = metadata.thing_classes
        vocab = Vocabulary(tuple(_split_synonyms(n) for n in raw), tuple(range(len(raw))))
    else:
        raise ValueError(f"metadata '{metadata.get('name', '?')}' has neither stuff_classes nor thing_classes")
    classes = tuple(tuple(dict.fromkeys((*syns, *_split_synonyms(n)))) for syns, n in zip(vocab.classes, raw))
    return Vocabulary(classes, vocab.thing_ids)


def match_classes(vocabulary: Vocabulary, dataset: Vocabulary, strict: bool = True):
    """Which class of ``dataset`` each class of ``vocabulary`` names, by name (case-insensitive).

    A class matches the dataset classes one of whose synonyms is its display name; when there
    are several, the one whose display name is the same wins; without a match on the display
    name, its other synonyms are tried the same way.

    Returns:
        a tuple with, per vocabulary class, the dataset class index or None (no match).
    Raises:
        ValueError (``strict``): a name that matches several dataset classes equally, or two
        vocabulary classes that name the same dataset class. Without ``strict`` these are None.
    """
    names = [{n.lower() for n in syns} for syns in dataset.classes]
    display = [syns[0].lower() for syns in dataset.classes]
    out = []
    for syns in vocabulary.classes:
        found = None
        for name in (x.lower() for x in syns):
            hits = [j for j, n in enumerate(names) if name in n]
            if len(hits) > 1:
                exact = [j for j in hits if display[j] == name]
                if len(exact) != 1:
                    if strict:
                        raise ValueError(f"vocabulary class {syns[0]!r} is ambiguous: '{name}' names the dataset "
                                         f"classes {[dataset.names[j] for j in hits]}")
                    break
                hits = exact
            if hits:
                found = hits[0]
                break
        out.append(found)
    first = {}
    for i, j in enumerate(out):
        if j is None:
            continue
        if j in first:
            if strict:
                raise ValueError(f"vocabulary classes {vocabulary.names[first[j]]!r} and {vocabulary.names[i]!r} "
                                 f"both name the dataset class {dataset.names[j]!r}")
            out[i] = None
        else:
            first[j] = i
    return tuple(out)


def _split_synonyms(name):
    syns = tuple(dict.fromkeys(s.strip() for s in name.split(",") if s.strip()))
    if not syns:
        raise ValueError(f"class name {name!r} has no synonym")
    return syns


def parse_vocabulary(text: str, thing_names: Sequence[str] = ()) -> Vocabulary:
    """Parse ``"cat;dog,puppy;sky"`` into a :class:`Vocabulary`.

    Args:
        text: classes separated by ``;``, synonyms of a class by ``,``.
        thing_names: names (any synonym) of the classes that are countable things; the rest are
            stuff. If empty, every class is a thing (open-vocabulary demos mostly name objects).
            A name that is no class's is an error.
    """
    if not text or not text.strip():
        raise ValueError("empty vocabulary: give classes like 'cat;dog,puppy;sky'")
    parts = [p for p in (s.strip() for s in text.split(";")) if p]
    if not parts:
        raise ValueError(f"vocabulary {text!r} holds no class name")
    classes = tuple(_split_synonyms(p) for p in parts)
    if thing_names:
        wanted = {t.strip().lower() for t in thing_names if t.strip()}
        names = [{s.lower() for s in syns} for syns in classes]
        unknown = sorted(t for t in wanted if not any(t in n for n in names))
        if unknown:
            raise ValueError(f"thing names {unknown} are not in the vocabulary {[c[0] for c in classes]}")
        thing_ids = tuple(i for i, n in enumerate(names) if n & wanted)
    else:
        thing_ids = tuple(range(len(classes)))
    return Vocabulary(classes, thing_ids)
