"""Noun-phrase extraction: the chunk grammar on hand-tagged sentences, the tokenizer, the
pluggable tagger and the errors that say how to install NLTK's tagger."""
import sys
import types

import pytest

from odise_ext.data.noun_phrases import (
    DEFAULT_GRAMMAR,
    NLTK_DATA_COMMAND,
    WITH_DETERMINERS,
    NltkTagger,
    NounPhraseExtractor,
    TaggerUnavailableError,
    chunk_noun_phrases,
    load_tagger,
    tokenize,
)

RED_CAR = [("a", "DT"), ("red", "JJ"), ("car", "NN"), ("on", "IN"), ("the", "DT"),
           ("street", "NN")]


def test_default_grammar_is_odise_nbar_without_determiners():
    assert chunk_noun_phrases(RED_CAR) == ["red car", "street"]
    assert chunk_noun_phrases(RED_CAR, DEFAULT_GRAMMAR) == ["red car", "street"]


def test_grammar_with_determiners_keeps_them():
    assert chunk_noun_phrases(RED_CAR, WITH_DETERMINERS) == ["a red car", "the street"]
    two_dogs = [("two", "CD"), ("dogs", "NNS"), ("sleep", "VBP")]
    assert chunk_noun_phrases(two_dogs) == ["dogs"]
    assert chunk_noun_phrases(two_dogs, WITH_DETERMINERS) == ["two dogs"]


def test_phrase_ends_at_its_last_noun():
    # "next" (JJ) continues the adjective/noun run but cannot end a phrase.
    tagged = [("a", "DT"), ("fire", "NN"), ("hydrant", "NN"), ("next", "JJ"), ("to", "TO"),
              ("a", "DT"), ("tall", "JJ"), ("building", "NN")]
    assert chunk_noun_phrases(tagged) == ["fire hydrant", "tall building"]


def test_runs_without_noun_give_no_phrase():
    tagged = [("the", "DT"), ("sky", "NN"), ("is", "VBZ"), ("very", "RB"), ("blue", "JJ"),
              (".", ".")]
    assert chunk_noun_phrases(tagged) == ["sky"]
    # A determiner + adjective run cut by a comma, then a new phrase.
    tagged = [("the", "DT"), ("big", "JJ"), (",", ","), ("red", "JJ"), ("bus", "NN")]
    assert chunk_noun_phrases(tagged, WITH_DETERMINERS) == ["red bus"]
    assert chunk_noun_phrases([]) == []


def test_proper_and_plural_nouns_chain():
    tagged = [("New", "NNP"), ("York", "NNP"), ("taxis", "NNS"), ("wait", "VBP")]
    assert chunk_noun_phrases(tagged) == ["New York taxis"]


def test_tokenize_splits_punctuation_and_clitics():
    assert tokenize("A man's hat, isn't it?") == ["A", "man", "'s", "hat", ",", "is", "n't",
                                                   "it", "?"]
    assert tokenize("a dog-sled  on snow.") == ["a", "dog-sled", "on", "snow", "."]


def _lexicon_tagger(lexicon):
    return lambda tokens: [(t, lexicon.get(t.lower(), "NN")) for t in tokens]


def test_extractor_lowercases_and_deduplicates():
    tagger = _lexicon_tagger({"a": "DT", "and": "CC", "big": "JJ", ".": "."})
    extractor = NounPhraseExtractor(tagger)
    assert extractor("A Dog and a dog and a big Cat.") == ["dog", "big cat"]


def test_extractor_rejects_a_tagger_that_drops_tokens():
    extractor = NounPhraseExtractor(lambda tokens: [(t, "NN") for t in tokens[:-1]])
    with pytest.raises(ValueError, match="1 tokens|tags for"):
        extractor("dog .")


def test_missing_nltk_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)  # makes `import nltk` raise ImportError
    with pytest.raises(TaggerUnavailableError) as err:
        NltkTagger()
    assert "pip install nltk" in str(err.value)
    assert NLTK_DATA_COMMAND in str(err.value)
    assert NLTK_DATA_COMMAND == "python -m nltk.downloader averaged_perceptron_tagger_eng"


def test_missing_tagger_data_says_how_to_download(monkeypatch):
    fake = types.ModuleType("nltk")

    def pos_tag(tokens):
        raise LookupError("Resource averaged_perceptron_tagger_eng not found.")

    fake.pos_tag = pos_tag
    monkeypatch.setitem(sys.modules, "nltk", fake)
    with pytest.raises(TaggerUnavailableError) as err:
        NltkTagger()  # fails at construction, before any caption is processed
    assert NLTK_DATA_COMMAND in str(err.value)


def test_nltk_tagger_wraps_pos_tag(monkeypatch):
    fake = types.ModuleType("nltk")
    fake.pos_tag = lambda tokens: [(t, "NN") for t in tokens]
    monkeypatch.setitem(sys.modules, "nltk", fake)
    assert NltkTagger()(["cat", "mat"]) == [("cat", "NN"), ("mat", "NN")]


def test_load_tagger_spec(monkeypatch):
    module = types.ModuleType("fake_tagger_module")
    module.make = lambda: _lexicon_tagger({"the": "DT"})
    monkeypatch.setitem(sys.modules, "fake_tagger_module", module)
    tagger = load_tagger("fake_tagger_module:make")
    assert tagger(["the", "cat"]) == [("the", "DT"), ("cat", "NN")]
    with pytest.raises(ValueError, match="package.module:factory"):
        load_tagger("spacy")
    with pytest.raises(ValueError, match="no attribute 'missing'"):
        load_tagger("fake_tagger_module:missing")
