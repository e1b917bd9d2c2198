"""Caps on what the predictor, tools/demo.py and the web demo accept (DATA.MAX_INPUT_PIXELS, the
upload size), and demo drawings that never overwrite each other."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from odise_ext.web.inputs import MAX_UPLOAD_BYTES, InputError, load_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "testing", "odise_tiny.yaml")
sys.path.insert(0, os.path.join(ROOT, "tools"))


def test_output_paths_never_collide(tmp_path):
    from demo import output_paths

    inputs = ["a/cat.jpg", "b/cat.jpg", "cat.png", "cat_1.jpg", "b/cat.jpg", "Dog.jpg", "dog.png"]
    out = output_paths(inputs, "o")
    assert [os.path.basename(p) for p in out] == [
        "cat.png", "cat_1.png", "cat_2.png", "cat_1_1.png", "cat_3.png", "Dog.png", "dog_1.png"]
    assert all(os.path.dirname(p) == "o" for p in out)


@pytest.fixture(scope="module")
def predictor(shapes_root):
    from odise_ext.config import setup_cfg
    from odise_ext.engine.predictor import Predictor

    torch.manual_seed(0)
    return Predictor(setup_cfg(TINY, ["MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False", "DATA.MAX_INPUT_PIXELS", "2000"]))


def test_demo_writes_one_drawing_per_input_of_the_same_name(predictor, tmp_path, monkeypatch):
    import demo

    from odise_ext.odise.hooks import ODISEDemo

    monkeypatch.setattr(ODISEDemo, "build_predictor", lambda self: predictor)
    inputs = []
    for i, sub in enumerate(("x", "y")):
        (tmp_path / sub).mkdir()
        path = tmp_path / sub / "img.png"
        Image.fromarray(np.full((24, 40 + 8 * i, 3), 30 * i, np.uint8)).save(path)
        inputs.append(str(path))
    demo.main(["--config-file", TINY, "--input", *inputs, "--output", str(tmp_path / "out")])
    drawn = sorted(os.listdir(tmp_path / "out"))
    assert drawn == ["img.png", "img_1.png"]
    # each drawing has its own input's size (enlarged by a whole factor for display): neither
    # overwrote the other
    from odise_ext.utils.visualization import display_factor

    for name, (h, w) in (("img.png", (24, 40)), ("img_1.png", (24, 48))):
        f = display_factor(h, w)
        assert Image.open(tmp_path / "out" / name).size == (w * f, h * f)


def test_predictor_refuses_images_over_the_pixel_cap(predictor):
    ok = np.zeros((40, 50, 3), np.uint8)  # 2000 pixels: at the cap
    assert predictor(ok)["panoptic_seg"][0].shape == (40, 50)
    with pytest.raises(ValueError, match=r"is 51x40 = 2040 pixels, over DATA.MAX_INPUT_PIXELS = 2000"):
        predictor(np.zeros((40, 51, 3), np.uint8))


def test_demo_refuses_a_big_image_before_decoding(predictor, tmp_path, monkeypatch):
    import demo

    from odise_ext.odise.hooks import ODISEDemo

    monkeypatch.setattr(ODISEDemo, "build_predictor", lambda self: predictor)
    big = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(big)
    decoded = []
    import odise_ext.data.image_io as image_io  # the demo imports its reader when it runs

    monkeypatch.setattr(image_io, "read_image", lambda *a, **k: decoded.append(a) or np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(SystemExit, match=r"big.png' is 100x100 = 10000 pixels, over DATA.MAX_INPUT_PIXELS = 2000"):
        demo.main(["--config-file", TINY, "--input", str(big), "--output", str(tmp_path / "o.png"),
                   "--opts", "DATA.MAX_INPUT_PIXELS", "2000"])
    assert not decoded and not (tmp_path / "o.png").exists()


def test_web_refuses_big_images_and_big_uploads(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 32)).save(path)
    assert load_image(str(path), max_pixels=64 * 32).shape == (32, 64, 3)
    with pytest.raises(InputError, match=r"64x32 = 2048 pixels; the demo takes up to 2047 \(DATA.MAX_INPUT_PIXELS\)"):
        load_image(str(path), max_pixels=2047)
    size = os.path.getsize(path)
    with pytest.raises(InputError, match=r"uploads up to"):
        load_image(str(path), max_bytes=size - 1)
    assert not path.exists()  # the refused upload is not kept
    assert MAX_UPLOAD_BYTES == 50 * 2**20


def test_web_demo_passes_the_upload_cap_to_gradio(monkeypatch):
    import web_demo

    import odise_ext.web as web

    seen = {}

    class _App:
        def queue(self, **kwargs):
            return self

        def launch(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(web, "build_session", lambda f, opts: f)
    monkeypatch.setattr(web, "build_app", lambda sessions, tagger, picker=None: _App())
    web_demo.main(["--config-file", TINY])
    assert seen["max_file_size"] == MAX_UPLOAD_BYTES and seen["server_name"] == "127.0.0.1"
