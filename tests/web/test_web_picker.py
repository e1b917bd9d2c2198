"""The web demo's model picker without a browser: which zoo entries each task tab offers (by
their config's META_ARCHITECTURE), loading an entry served by the zoo tests' loopback server
(download, conversion, the released weights in the session), the per-entry cache and its limit,
and the zoo's message in the page for an entry that cannot be fetched."""
import hashlib
import os
import socket
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "zoo"))

from zoo_fixtures import odise_release_bytes, server, set_catalog, zoo_cache  # noqa: E402,F401

from odise_ext.config import setup_cfg  # noqa: E402
from odise_ext.web.build import build_session  # noqa: E402
from odise_ext.web.picker import ModelPicker  # noqa: E402
from odise_ext.web.session import DemoSession  # noqa: E402
from odise_ext.zoo import ZooError, resolve  # noqa: E402

TINY_ODISE = "configs/testing/odise_tiny.yaml"


def _entry(file_name, urls, config=TINY_ODISE, sha256=None):
    """A catalog entry of a tiny model (random base weights: nothing else to fetch)."""
    return {"file_name": file_name, "urls": urls, "source": "the test", "release_format": "odise",
            "config": config, "diffusion_weights": "random", "clip_weights": "random", "sha256": sha256}


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """A stand-in for gr.Progress: keeps every (fraction, desc)."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None, **kwargs):
        self.calls.append((fraction, desc))


def _keys(picker, task):
    return {key for _, key in picker.choices(task)}


def test_each_task_tab_offers_the_entries_of_its_task(zoo_cache, set_catalog):
    set_catalog({
        "odise://tiny": _entry("tiny.pth", []),
        "vpd://tiny_depth": _entry("tiny_depth.pth", [], config="configs/testing/vpd_depth_tiny.yaml"),
        "vpd://gone": _entry("gone.pth", [], config="configs/no_such_config.yaml"),  # not offered
    })
    picker = ModelPicker()
    assert _keys(picker, "ODISE") == {"odise://label_coco_50e", "odise://caption_coco_50e", "odise://tiny"}
    assert _keys(picker, "DenseDepthEstimator") == {"vpd://nyu_depth", "metaprompts://nyu_depth",
                                                     "metaprompts://kitti_depth", "vpd://tiny_depth"}
    assert _keys(picker, "DenseSemanticSegmentor") == {"vpd://ade20k", "metaprompts://ade20k",
                                                        "metaprompts://cityscapes", "metaprompts://cityscapes_extra"}
    assert _keys(picker, "DenseReferSegmentor") == {"vpd://refcoco"}
    assert "PNGDiffusion" not in picker.tasks()  # no released PNG checkpoint: no tab without a launch model
    assert picker.session("odise://tiny") is None  # offered, not loaded: nothing is built up front

    launch = DemoSession(setup_cfg("configs/testing/png_tiny.yaml"), None, None, "png_tiny.yaml")
    picker.add("png_tiny.yaml", launch)
    assert picker.tasks()[0] == "PNGDiffusion"
    assert picker.choices("PNGDiffusion") == [("png_tiny.yaml", "png_tiny.yaml")]
    assert picker.session("png_tiny.yaml") is launch


def test_choosing_an_entry_fetches_converts_and_caches_its_session(server, zoo_cache, set_catalog, tmp_path):
    data, src = odise_release_bytes(tmp_path)
    server.files["/tiny-a.pth"] = server.files["/tiny-b.pth"] = data
    digest = hashlib.sha256(data).hexdigest()[:8]
    set_catalog({"odise://tiny_a": _entry("tiny-a.pth", [server.url + "/tiny-a.pth"], sha256=digest),
                 "odise://tiny_b": _entry("tiny-b.pth", [server.url + "/tiny-b.pth"], sha256=digest)})
    built = []

    def builder(config_file, opts):
        built.append(opts[1])
        return build_session(config_file, opts)

    picker = ModelPicker(["SEED", "0"], max_loaded=1, builder=builder)
    progress = Recorder()
    shown, note = picker.select("odise://tiny_a", None, progress)
    assert shown == "odise://tiny_a" and "`odise://tiny_a` (MODEL.WEIGHTS)" in note and "odise_tiny.yaml" in note
    assert [d for _, d in progress.calls] == ["fetching odise://tiny_a", "building the model of odise://tiny_a",
                                              "odise://tiny_a loaded"]
    assert progress.calls[-1][0] == 1.0 and len(server.gets("/tiny-a.pth")) == 1
    session = picker.session("odise://tiny_a")
    assert session.cfg.SEED == 0 and session.task == "ODISE"  # the picker's opts reach the config
    ours, theirs = session.model.state_dict(), src.state_dict()
    for k, v in theirs.items():  # the released weights were loaded, not random ones
        if torch.is_tensor(v) and not k.startswith("criterion."):
            assert torch.equal(ours[k], v), k
    assert ("odise://tiny_a (loaded)", "odise://tiny_a") in picker.choices("ODISE")

    # choosing it again: the same session, nothing fetched or built
    assert picker.select("odise://tiny_a", "odise://tiny_a", Recorder())[0] == "odise://tiny_a"
    assert picker.session("odise://tiny_a") is session and built == ["odise://tiny_a"]

    # max_loaded=1: another entry unloads it; back to it, it is rebuilt from the cached converted file
    picker.select("odise://tiny_b", "odise://tiny_a", Recorder())
    assert picker.session("odise://tiny_a") is None and picker.session("odise://tiny_b") is not None
    picker.select("odise://tiny_a", "odise://tiny_b", Recorder())
    assert built == ["odise://tiny_a", "odise://tiny_b", "odise://tiny_a"]
    assert len(server.gets("/tiny-a.pth")) == 1 and len(server.gets("/tiny-b.pth")) == 1

    # the page: one tab per task with a dropdown; the chosen model's components render in it
    gr = pytest.importorskip("gradio")
    from odise_ext.web.app import build_app, picker_body

    app = build_app([], picker=picker)
    dropdowns = [b for b in app.blocks.values() if isinstance(b, gr.Dropdown) and b.elem_id == "odise-model"]
    assert len(dropdowns) == 1 and dropdowns[0].value == "odise://tiny_a"
    assert {"odise://tiny_a", "odise://caption_coco_50e"} <= {c[1] for c in dropdowns[0].choices}
    with gr.Blocks() as body:
        picker_body(picker, "ODISE", "odise://tiny_a", "nltk")
    assert "odise-run" in {b.elem_id for b in body.blocks.values()}


def test_an_entry_that_cannot_be_fetched_shows_the_zoo_message(zoo_cache, set_catalog):
    url = f"http://127.0.0.1:{_closed_port()}/tiny.pth"  # offline: nothing answers, nothing is cached
    set_catalog({"odise://tiny": _entry("tiny.pth", [url], sha256="00000000")})
    with pytest.raises(ZooError) as err:
        resolve("odise://tiny")
    first_line = str(err.value).splitlines()[0]

    picker = ModelPicker(builder=lambda *a: pytest.fail("nothing to build"))
    launch = DemoSession(setup_cfg(TINY_ODISE), None, None, TINY_ODISE)
    picker.add("launch", launch)
    shown, note = picker.select("odise://tiny", "launch", Recorder())
    assert shown == "launch" and picker.session("launch") is launch  # the tab keeps its model
    assert note.startswith(f"**Cannot load `odise://tiny`**: {first_line}")
    assert url in note and "cannot reach the server" in note and "curl -L -C - -o" in note  # the manual steps
    assert "Traceback" not in note and note.endswith("Still showing `launch`.")
    assert picker.select("odise://tiny", None, Recorder())[0] is None
    shown, note = picker.select("odise://nope", "launch", Recorder())
    assert shown == "launch" and "not a choice here" in note and "odise://tiny" in note


def test_the_dropdown_goes_back_to_the_model_still_shown(zoo_cache, set_catalog):
    gr = pytest.importorskip("gradio")
    from odise_ext.web.app import build_app

    set_catalog({"odise://tiny": _entry("tiny.pth", [f"http://127.0.0.1:{_closed_port()}/tiny.pth"])})
    picker = ModelPicker(builder=lambda *a: pytest.fail("nothing to build"))
    picker.add("launch", DemoSession(setup_cfg(TINY_ODISE), None, None, TINY_ODISE))
    app = build_app([], picker=picker)
    dropdown = next(b for b in app.blocks.values() if isinstance(b, gr.Dropdown) and b.elem_id == "odise-model")
    assert dropdown.value == "launch"  # the launch model is shown first
    choose = next(f for f in app.fns.values() if dropdown in f.outputs)
    shown, note, update = choose.fn("odise://tiny", "launch", progress=Recorder())
    assert shown == "launch" and "**Cannot load `odise://tiny`**" in note
    assert update["value"] == "launch" and ("launch", "launch") in update["choices"]


def test_web_demo_without_models_serves_the_picker(zoo_cache, monkeypatch):
    import importlib

    import odise_ext.web as web

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools"))
    try:
        web_demo = importlib.import_module("web_demo")
    finally:
        sys.path.pop(0)
    seen = {}

    class _App:
        def queue(self, **kwargs):
            return self

        def launch(self, **kwargs):
            seen["launched"] = True

    def fake_build_app(sessions, tagger, picker=None):
        seen.update(sessions=sessions, picker=picker)
        return _App()

    monkeypatch.setattr(web, "build_app", fake_build_app)
    web_demo.main(["--max-models", "3"])
    picker = seen["picker"]
    assert seen["launched"] and seen["sessions"] == [] and isinstance(picker, ModelPicker)
    assert picker.max_loaded == 3 and "odise://label_coco_50e" in _keys(picker, "ODISE")
    with pytest.raises(SystemExit, match="--max-models must be at least 1"):
        web_demo.main(["--max-models", "0"])
