"""Noun phrases of captions, for ODISE's caption grounding loss.

Extracted once, at dataset-preparation time (``datasets/prepare_coco_caption_phrases.py``), not
in the forward pass. Three steps:

1. :func:`tokenize`: words, clitics and punctuation (a regular expression, so no tokenizer
   data is needed);
2. a part-of-speech **tagger**, pluggable: any callable ``tokens -> [(token, Penn tag)]``. The
   default, :class:`NltkTagger`, is NLTK's averaged perceptron tagger;
3. :func:`chunk_noun_phrases`: a chunk grammar over the tags. The default grammar is ODISE's
   (the "NBAR" rule ``<NN.*|JJ>*<NN.*>``: adjectives and nouns ending with a noun), so phrases
   fit its prompt "a photo of a {}."; ``ChunkGrammar(determiners=...)`` keeps a leading
   determiner ("a red car").

Phrases are lower-cased and de-duplicated per caption, in order of appearance.
"""
import importlib
import re
from dataclasses import dataclass
from typing import Callable, FrozenSet, List, Optional, Sequence, Tuple

__all__ = [
    "ChunkGrammar",
    "DEFAULT_GRAMMAR",
    "NLTK_DATA_COMMAND",
    "NltkTagger",
    "NounPhraseExtractor",
    "TaggerUnavailableError",
    "WITH_DETERMINERS",
    "chunk_noun_phrases",
    "load_tagger",
    "tokenize",
]

Tagged = Sequence[Tuple[str, str]]
Tagger = Callable[[List[str]], List[Tuple[str, str]]]

# NLTK >= 3.9 names the tagger data "averaged_perceptron_tagger_eng" (older releases:
# "averaged_perceptron_tagger").
NLTK_DATA_COMMAND = "python -m nltk.downloader averaged_perceptron_tagger_eng"


class TaggerUnavailableError(RuntimeError):
    """The tagger's package or data is not installed; the message says how to install it."""


@dataclass(frozen=True)
class ChunkGrammar:
    """A noun phrase = ``determiner* (modifier | noun)* noun``, maximal and left to right.

    Attributes:
        nouns: tags that may end a phrase (and appear inside it).
        modifiers: tags allowed inside a phrase before its last noun.
        determiners: tags allowed only at the start of a phrase (empty: dropped).
    """

    nouns: FrozenSet[str] = frozenset({"NN", "NNS", "NNP", "NNPS"})
    modifiers: FrozenSet[str] = frozenset({"JJ", "JJR", "JJS"})
    determiners: FrozenSet[str] = frozenset()


DEFAULT_GRAMMAR = ChunkGrammar()
# The variant that keeps articles, possessives and numbers in front of the phrase.
WITH_DETERMINERS = ChunkGrammar(determiners=frozenset({"DT", "PDT", "PRP$", "CD"}))

# Penn-Treebank-like: clitics split off ("man's" -> "man" "'s", "don't" -> "do" "n't"), as the
# taggers were trained on such tokens; hyphenated words stay whole.
_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|\w+(?:-\w+)*|[^\w\s]",
                    re.IGNORECASE)


def tokenize(text: str) -> List[str]:
    """Words, clitics and single punctuation marks."""
    return _TOKEN.findall(text)


def chunk_noun_phrases(tagged: Tagged, grammar: ChunkGrammar = DEFAULT_GRAMMAR) -> List[str]:
    """The noun phrases of a tagged sentence, as space-joined tokens, in order (case kept).

    Each phrase is the longest match of the grammar starting at the leftmost possible token;
    tokens between phrases (verbs, prepositions, punctuation, ...) are skipped.
    """
    words = [w for w, _ in tagged]
    tags = [t for _, t in tagged]
    inner = grammar.modifiers | grammar.nouns
    phrases = []
    i, n = 0, len(tags)
    while i < n:
        j = i
        while j < n and tags[j] in grammar.determiners:
            j += 1
        last_noun = -1
        while j < n and tags[j] in inner:
            if tags[j] in grammar.nouns:
                last_noun = j
            j += 1
        if last_noun < 0:
            # No noun in the run i..j-1: a phrase starting inside the run would scan the same
            # tags and fail too, so the next candidate start is j.
            i = j if j > i else i + 1
            continue
        phrases.append(" ".join(words[i:last_noun + 1]))
        i = last_noun + 1
    return phrases


class NltkTagger:
    """NLTK's averaged perceptron tagger (Penn Treebank tags).

    Needs ``pip install nltk`` and its data (:data:`NLTK_DATA_COMMAND`); construction checks
    both, so a long run fails at once rather than on the first caption.
    """

    def __init__(self):
        try:
            import nltk
        except ImportError as e:
            raise TaggerUnavailableError(
                "The default noun-phrase tagger needs NLTK, which is not installed. Install it and "
                f"its tagger data with:\n    pip install nltk\n    {NLTK_DATA_COMMAND}"
            ) from e
        self._pos_tag = nltk.pos_tag
        self(["a", "test"])  # loads the model: raises here if its data is missing

    def __call__(self, tokens: List[str]) -> List[Tuple[str, str]]:
        if not tokens:
            return []
        try:
            return list(self._pos_tag(tokens))
        except LookupError as e:
            raise TaggerUnavailableError(
                "NLTK's averaged perceptron tagger data is not installed. Install it with:\n"
                f"    {NLTK_DATA_COMMAND}\n"
                "(NLTK < 3.9 names it 'averaged_perceptron_tagger'; set NLTK_DATA if you keep "
                "NLTK data outside the default search path)"
            ) from e


def load_tagger(spec: str = "nltk") -> Tagger:
    """A tagger from a command-line spec: ``"nltk"`` or ``"package.module:factory"``, where
    ``factory()`` returns a callable ``tokens -> [(token, tag)]`` with Penn Treebank tags."""
    if spec == "nltk":
        return NltkTagger()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"Tagger spec {spec!r}: expected 'nltk' or 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if factory is None:
        raise ValueError(f"Tagger spec {spec!r}: module {module_name} has no attribute {attr!r}")
    return factory()


class NounPhraseExtractor:
    """``caption -> [noun phrases]`` (lower-case, unique, in order).

    Args:
        tagger: callable ``tokens -> [(token, tag)]``; default :class:`NltkTagger`.
        grammar: the chunk grammar (default: ODISE's, without determiners).
    """

    def __init__(self, tagger: Optional[Tagger] = None, grammar: ChunkGrammar = DEFAULT_GRAMMAR):
        self.tagger = tagger if tagger is not None else NltkTagger()
        self.grammar = grammar

    def __call__(self, caption: str) -> List[str]:
        tokens = tokenize(caption)
        tagged = self.tagger(tokens)
        if len(tagged) != len(tokens):
            raise ValueError(f"Tagger returned {len(tagged)} tags for {len(tokens)} tokens "
                             f"of caption {caption!r}")
        phrases = []
        for phrase in chunk_noun_phrases(tagged, self.grammar):
            phrase = phrase.lower()
            if phrase not in phrases:
                phrases.append(phrase)
        return phrases
