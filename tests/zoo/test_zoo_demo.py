"""tools/demo.py with only --input and --output: the default zoo entry (pointed at the loopback
server and a tiny released-layout checkpoint) is downloaded, verified, converted and run; and
--video-input on a short video written here."""
import importlib
import os
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from odise_ext.zoo.resolve import cache_paths, get_entry

from zoo_fixtures import ROOT, odise_release_bytes, server, set_catalog, zoo_cache  # noqa: F401


def _demo():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        return importlib.import_module("demo")
    finally:
        sys.path.pop(0)


def _image(tmp_path, h=96, w=128):
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path = tmp_path / "img.jpg"
    Image.fromarray(rgb).save(path)
    return str(path)


def test_demo_runs_with_only_input_and_output(server, zoo_cache, set_catalog, tmp_path, shapes_root):
    import hashlib

    data, _ = odise_release_bytes(tmp_path)
    server.files["/odise_label_coco_50e-tiny.pth"] = data
    # the default entry, as a mirror would serve it: a tiny model of the same family and its config
    set_catalog({"odise://label_coco_50e": {
        "file_name": "odise_label_coco_50e-tiny.pth", "urls": [server.url + "/odise_label_coco_50e-tiny.pth"],
        "sha256": hashlib.sha256(data).hexdigest()[:8], "config": "configs/testing/odise_tiny.yaml",
        "diffusion_weights": "random", "clip_weights": "random"}})
    out = tmp_path / "out.png"
    _demo().main(["--input", _image(tmp_path), "--output", str(out)])
    from odise_ext.utils.visualization import display_factor

    f = display_factor(96, 128)  # the drawing: the input (128 x 96) enlarged for display
    assert Image.open(out).size == (128 * f, 96 * f)
    assert len(server.gets("/odise_label_coco_50e-tiny.pth")) == 1
    assert os.path.isfile(cache_paths(get_entry("odise://label_coco_50e"))[1])  # converted and cached


def test_demo_inputs_globs_and_folders(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    demo = _demo()
    assert demo.expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]
    assert demo.expand_inputs([str(tmp_path / "*.png")]) == [str(tmp_path / "b.png")]
    with pytest.raises(SystemExit, match="no image matches"):
        demo.expand_inputs([str(tmp_path / "*.gif")])


def test_label_presets_merge_with_vocab():
    from odise_ext.odise.open_vocab.vocabulary import parse_vocabulary
    from odise_ext.odise.vocabulary_presets import merge_vocabulary

    vocab, things = merge_vocabulary(["coco"], "teddy,plush toy", "")
    v = parse_vocabulary(vocab, thing_names=things.split(";"))
    assert len(v.names) == 134 and v.classes[-1] == ("teddy", "plush toy")  # 133 COCO classes, then --vocab's
    first = list(v.names)  # the displayed names: each class's first synonym
    assert first[0] == "person" and first[-1] == "teddy"
    assert first.index("sky") not in v.thing_ids and {0, 133} <= set(v.thing_ids)
    with pytest.raises(ValueError, match="no LVIS class list"):
        merge_vocabulary(["lvis"], "", "")


def test_video_input_writes_a_video_of_drawn_frames(tmp_path, shapes_root):
    src = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(src, cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    dst = str(tmp_path / "drawn.avi")
    _demo().main(["--config-file", os.path.join(ROOT, "configs/testing/odise_tiny.yaml"), "--video-input", src,
                  "--output", dst, "--vocab", "circle;square"])
    cap = cv2.VideoCapture(dst)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    from odise_ext.utils.visualization import display_factor

    f = display_factor(48, 64)  # each frame drawn as a still image is: enlarged for display
    assert len(frames) == 3 and frames[0].shape == (48 * f, 64 * f, 3)
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]
