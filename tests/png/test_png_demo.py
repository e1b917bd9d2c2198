"""tools/demo.py on a PNG model: --narrative (required) and --phrases (optional; else the
narrative's noun phrases), one coloured mask per phrase, drawn >= 512 px wide."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import demo  # noqa: E402  (tools/demo.py)

from odise_ext.png import narrative as png_narrative  # noqa: E402
from odise_ext.png.narrative import find_noun_phrases, locate_phrases  # noqa: E402

CFG = os.path.join(ROOT, "configs", "testing", "png_tiny.yaml")
NARRATIVE = "A red circle above the sand, a blue square and the water."


@pytest.fixture(scope="module")
def image_path(shapes_root, tmp_path_factory):
    from detectron2.data import DatasetCatalog

    src = DatasetCatalog.get("png_shapes_val")[0]["file_name"]
    path = tmp_path_factory.mktemp("png_demo") / "input.png"
    Image.open(src).convert("RGB").crop((0, 0, 96, 64)).save(path)  # non-square, small
    return str(path)


def test_locate_phrases_in_order_as_whole_words():
    text = "the sand and the sandy water"
    assert locate_phrases(text, ["the sand", "water"]) == [(0, 8), (23, 28)]
    assert locate_phrases("A Red circle", ["red  circle"]) == [(2, 12)]  # case, whitespace
    with pytest.raises(ValueError, match="'sand' is not in the narrative after"):
        locate_phrases(text, ["water", "sand"])  # out of order
    with pytest.raises(ValueError, match="'san' is not in the narrative"):
        locate_phrases(text, ["san"])  # not a whole word


def test_noun_phrases_without_nltk_use_the_shapes_words(monkeypatch):
    from odise_ext.data.noun_phrases import TaggerUnavailableError

    def unavailable(spec):
        raise TaggerUnavailableError("no nltk")

    monkeypatch.setattr(png_narrative, "load_tagger", unavailable)
    phrases, note = find_noun_phrases(NARRATIVE)
    assert phrases == ["red circle", "sand", "blue square", "water"]
    assert "NLTK's tagger is not installed" in note and "--phrases" in note


def _run(image_path, out, *extra):
    demo.main(["--config-file", CFG, "--input", image_path, "--output", str(out), *extra, "--opts", "SEED", "0"])
    return np.asarray(Image.open(out).convert("RGB"))


def test_demo_grounds_given_phrases_end_to_end(image_path, tmp_path, capsys):
    from odise_ext.utils.visualization import enlarge_image

    torch.manual_seed(0)
    drawn = _run(image_path, tmp_path / "png.png", "--narrative", NARRATIVE, "--phrases", "a red circle;the water")
    out = capsys.readouterr().out
    assert "2 phrases (phrases from --phrases): a red circle; the water" in out
    # the 96 x 64 input enlarged x6 (576 x 384), the coloured narrative underneath
    assert drawn.shape[1:] == (576, 3) and drawn.shape[0] > 384
    image = enlarge_image(np.asarray(Image.open(image_path).convert("RGB")), 6).astype(int)
    assert np.abs(drawn[:384].astype(int) - image).mean() > 1  # masks drawn over the image
    caption = drawn[384:]
    assert (caption == 255).all(axis=2).mean() > 0.5 and (caption.max(axis=2) < 200).any()  # text on white


def test_demo_finds_the_phrases_when_none_are_given(image_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(png_narrative, "load_tagger", lambda spec: (_ for _ in ()).throw(
        png_narrative.TaggerUnavailableError("no nltk")))
    _run(image_path, tmp_path / "png.png", "--narrative", NARRATIVE)
    assert "4 phrases" in capsys.readouterr().out and (tmp_path / "png.png").exists()


@pytest.mark.parametrize("extra, message", [
    ((), "needs --narrative"),
    (("--narrative", "   "), "needs --narrative"),
    (("--narrative", NARRATIVE, "--phrases", "a dog"), "'a dog' is not in the narrative"),
    (("--narrative", "nothing to see here"), "no noun phrase found"),
    (("--narrative", NARRATIVE, "--sentence", "x"), "--sentence does not apply to PNGDiffusion"),
])
def test_demo_refuses_bad_png_flags_before_building(image_path, tmp_path, monkeypatch, extra, message):
    monkeypatch.setattr(png_narrative, "load_tagger", lambda spec: (_ for _ in ()).throw(
        png_narrative.TaggerUnavailableError("no nltk")))
    built = []
    monkeypatch.setattr("odise_ext.png.hooks.PNGPredictor", lambda cfg: built.append(cfg))
    with pytest.raises(SystemExit, match=message):
        demo.main(["--config-file", CFG, "--input", image_path, "--output", str(tmp_path / "x.png"), *extra])
    assert built == [] and not (tmp_path / "x.png").exists()
