"""Parsing helpers shared by the class-list modules."""
from typing import Dict, List, Sequence, Tuple

__all__ = ["parse_synonyms", "parse_label_lines", "check_count"]


def parse_synonyms(text: str) -> Tuple[str, ...]:
    """``"a,b c,d"`` -> ``("a", "b c", "d")`` (OpenSeg label-file syntax)."""
    syns = tuple(s.strip() for s in text.split(","))
    if any(not s for s in syns):
        raise ValueError(f"Empty synonym in {text!r}")
    return syns


def parse_label_lines(block: str) -> List[Tuple[int, Tuple[str, ...]]]:
    """``"key:syn,syn\\n..."`` lines -> ``[(key, synonyms)]`` in order."""
    out = []
    for line in block.strip().splitlines():
        key, sep, text = line.partition(":")
        if not sep:
            raise ValueError(f"Class-list line {line!r} lacks 'key:'")
        out.append((int(key), parse_synonyms(text)))
    return out


def check_count(categories: Sequence[Dict], expected: int, what: str) -> None:
    """Import-time guard: a wrong count would silently shift every label after it."""
    if len(categories) != expected:
        raise AssertionError(f"{what} has {len(categories)} classes, expected {expected}")
    if [c["id"] for c in categories] != list(range(expected)):
        raise AssertionError(f"{what}: ids must be 0..{expected - 1} in order")
