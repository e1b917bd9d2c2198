import math

import numpy as np
import pytest
import torch

from odise_ext.odise.open_vocab.fusion import geometric_ensemble
from odise_ext.odise.open_vocab.grounding_loss import caption_grounding_loss, grounding_scores
from odise_ext.odise.open_vocab.vocabulary import Vocabulary, parse_vocabulary


def _softmax(x):
    e = [math.exp(v - max(x)) for v in x]
    return [v / sum(e) for v in e]


def test_geometric_ensemble_matches_hand_computation():
    cat = [2.0, 0.5, -1.0, 0.3]  # 3 classes + null
    clip = [0.1, 1.5, 0.2]
    seen = [True, False, True]
    alpha, beta = 0.3, 0.7
    p = _softmax(cat[:3])
    q = _softmax(clip)
    fused = []
    for k in range(3):
        a = alpha if seen[k] else beta
        fused.append(p[k] ** (1 - a) * q[k] ** a)
    fused = [f / sum(fused) for f in fused]
    p_null = _softmax(cat)[3]
    expected = [math.log(f * (1 - p_null) + 1e-8) for f in fused] + [math.log(p_null + 1e-8)]
    out = geometric_ensemble(torch.tensor([cat]), torch.tensor([clip]), seen, alpha, beta)
    assert torch.allclose(out[0], torch.tensor(expected), atol=1e-6)
    # probabilities over K+1 sum to one
    assert torch.allclose(out.exp().sum(-1), torch.ones(1), atol=1e-5)


def test_geometric_ensemble_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="K\\+1"):
        geometric_ensemble(torch.zeros(1, 3), torch.zeros(1, 3), [True] * 3, 0.3, 0.7)


def test_grounding_scores_match_direct_loops():
    torch.manual_seed(0)
    z = torch.randn(3, 4, 5)
    w = torch.randn(2, 6, 5)
    tau = 7.0
    got = grounding_scores(z, w, tau)
    zn = z / z.norm(dim=-1, keepdim=True)
    wn = w / w.norm(dim=-1, keepdim=True)
    for i in range(3):
        for j in range(2):
            total = 0.0
            for k in range(6):
                s = [tau * float(zn[i, q] @ wn[j, k]) for q in range(4)]
                a = _softmax(s)
                total += sum(aq * sq for aq, sq in zip(a, s))
            assert abs(got[i, j].item() - total / 6) < 1e-4


def test_caption_grounding_loss_is_symmetric_infonce_and_has_gradient():
    torch.manual_seed(1)
    z = torch.randn(4, 5, 8, requires_grad=True)
    w = torch.randn(4, 3, 8, requires_grad=True)
    loss = caption_grounding_loss(z, w, 10.0)
    g = grounding_scores(z, w, 10.0).detach().numpy()

    def ce_rows(m):
        return np.mean([-(m[i, i] - np.log(np.exp(m[i]).sum())) for i in range(len(m))])

    expected = 0.5 * (ce_rows(g) + ce_rows(g.T))
    assert abs(loss.item() - expected) < 1e-5
    loss.backward()
    assert z.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_grounding_loss_prefers_matching_pairs():
    torch.manual_seed(2)
    base = torch.randn(3, 4, 16)
    matched = caption_grounding_loss(base, base[:, :2].clone(), 20.0)
    shuffled = caption_grounding_loss(base, base[[1, 2, 0], :2].clone(), 20.0)
    assert matched < shuffled


def test_parse_vocabulary_synonyms_and_things():
    v = parse_vocabulary("cat;dog, puppy ;sky", thing_names=["cat", "dog"])
    assert v.classes == (("cat",), ("dog", "puppy"), ("sky",))
    assert v.thing_ids == (0, 1)
    texts, owner = v.flatten()
    assert texts == ["cat", "dog", "puppy", "sky"] and owner == [0, 1, 1, 2]
    assert v.names == ["cat", "dog", "sky"]


@pytest.mark.parametrize("bad", ["", "  ", ";;", "cat;Cat", "dog,puppy;puppy,dog", "cat;cat,cat"])
def test_bad_vocabularies_are_clear_errors(bad):
    with pytest.raises(ValueError, match="vocabulary"):
        parse_vocabulary(bad)


def test_a_synonym_may_be_shared_by_two_classes():
    v = parse_vocabulary("dog,puppy;puppy,pup")
    texts, owner = v.flatten()
    assert texts == ["dog", "puppy", "puppy", "pup"] and owner == [0, 0, 1, 1]


def test_seen_mask_uses_any_synonym():
    train = parse_vocabulary("dog;grass")
    test = parse_vocabulary("puppy,dog;cat;lawn,grass")
    assert test.seen_mask(train) == [True, False, True]


def test_seen_mask_is_odise_exact_string_match():
    """ODISE: seen = the test class's synonym set is not disjoint from the set of all training
    synonyms, compared as exact strings. Written here as that set operation."""
    train = parse_vocabulary("dog,puppy;grass;traffic light")
    test = parse_vocabulary("Dog;puppy;GRASS,lawn;traffic  light;traffic light,signal;cat")
    train_names = set()
    for syns in train.classes:
        train_names |= set(syns)
    expected = [bool(train_names & set(syns)) for syns in test.classes]
    assert expected == [False, True, False, False, True, False]
    assert test.seen_mask(train) == expected


def test_vocabulary_from_metadata():
    class Meta(dict):
        def get(self, k, d=None):
            return dict.get(self, k, d)

    v = Vocabulary.from_metadata(Meta(stuff_classes=["circle", "sky,heaven"], thing_dataset_id_to_contiguous_id={3: 0}))
    assert v.classes == (("circle",), ("sky", "heaven")) and v.thing_ids == (0,)
    v = Vocabulary.from_metadata(Meta(stuff_classes=["a", "b"], stuff_synonyms=[["ring", "hoop"], ["star"]]))
    assert v.classes == (("ring", "hoop"), ("star",))
