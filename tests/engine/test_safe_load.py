"""No entry point runs code from a weights or index file: a pickle payload that would write a
marker file is refused with a message saying why and how to convert, for every weights key."""
import argparse
import os
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch

from odise_ext.config import setup_cfg
from odise_ext.utils.safe_load import (
    ALLOW_PICKLE_ENV,
    UnsafeFileError,
    read_torchscript_tensors,
    safe_pickle_load,
    safe_torch_load,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
TINY = os.path.join(ROOT, "configs/testing/odise_tiny.yaml")


class _Payload:
    """Pickles as a call of ``exec`` that writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.fixture
def payload(tmp_path):
    """``make(suffix, wrap)`` writes a file whose unpickling would create ``tmp_path/marker``."""
    marker = tmp_path / "marker"

    def make(suffix, wrap=lambda p: {"model": {"w": p}, "__author__": "attacker"}, use_torch=True):
        path = tmp_path / f"payload{suffix}"
        obj = wrap(_Payload(marker))
        if use_torch:
            torch.save(obj, path)
        else:
            with open(path, "wb") as f:
                pickle.dump(obj, f)
        return str(path)

    make.marker = marker
    yield make
    assert not marker.exists(), "code from the file ran"


def _assert_refused(excinfo, path):
    msg = str(excinfo.value)
    assert "Refusing to read" in msg and os.path.basename(path) in msg, msg
    assert ALLOW_PICKLE_ENV in msg and "convert" in msg, msg


def test_torch_payload_refused(payload):
    path = payload(".pth")
    with pytest.raises(UnsafeFileError) as e:
        safe_torch_load(path)
    _assert_refused(e, path)


def test_plain_pickle_payload_refused_and_plain_data_read(payload, tmp_path):
    path = payload(".pkl", use_torch=False)
    with pytest.raises(UnsafeFileError) as e:
        safe_pickle_load(path)
    _assert_refused(e, path)
    # what the refcoco refs / ADE20K index / detectron2 .pkl weights hold still loads
    good = {"blobs": {"conv1_w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "refs": [{"sent": "a dog", "id": 3}]}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        with open(tmp_path / "good.pkl", "wb") as f:
            pickle.dump(good, f, protocol=protocol)
        back = safe_pickle_load(str(tmp_path / "good.pkl"))
        assert back["refs"] == good["refs"]
        np.testing.assert_array_equal(back["blobs"]["conv1_w"], good["blobs"]["conv1_w"])


def test_opt_in_reads_legacy_pickles(tmp_path, monkeypatch):
    path = str(tmp_path / "legacy.pth")
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeFileError):
        safe_torch_load(path)
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    assert safe_torch_load(path)["args"].lr == 0.1


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_model_weights_through_detectron2_checkpointers(payload, suffix):
    """Training init and --eval-only (AtomicCheckpointer), the predictors and tools (SafeCheckpointer);
    detectron2's own checkpointer is not patched (DefaultPredictor: see test_default_predictor_and_demo)."""
    from odise_ext.engine import AtomicCheckpointer, SafeCheckpointer

    path = payload(suffix, use_torch=suffix != ".pkl")
    for cls in (AtomicCheckpointer, SafeCheckpointer):
        with pytest.raises(UnsafeFileError) as e:
            cls(torch.nn.Linear(2, 2)).load(path)
        _assert_refused(e, path)


def test_default_predictor_and_demo(payload, shapes_root, tmp_path):
    from detectron2.engine import DefaultPredictor

    import demo  # tools/demo.py

    path = payload(".pkl", use_torch=False)
    with pytest.raises(UnsafeFileError) as e:  # refused by setup_cfg, before detectron2 reads the file
        DefaultPredictor(setup_cfg(TINY, ["MODEL.WEIGHTS", path]))
    _assert_refused(e, path)
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    with pytest.raises(UnsafeFileError):
        demo.main(["--config-file", TINY, "--input", str(image), "--output", str(tmp_path / "o.png"),
                   "--opts", "MODEL.WEIGHTS", path])
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("eval_only", [False, True])
def test_train_net_training_init_and_eval_only(payload, shapes_root, tmp_path, eval_only):
    import train_net  # tools/train_net.py
    from detectron2.engine import default_argument_parser

    path = payload(".pkl", use_torch=False)
    argv = ["--config-file", TINY, *(["--eval-only"] if eval_only else []),
            "MODEL.WEIGHTS", path, "OUTPUT_DIR", str(tmp_path / "out"), "SOLVER.MAX_ITER", "1"]
    with pytest.raises(UnsafeFileError) as e:
        train_net.main(default_argument_parser().parse_args(argv))
    _assert_refused(e, path)


def test_diffusion_and_clip_weights_keys(payload):
    from detectron2.modeling import build_model

    import odise_ext  # noqa: F401

    ckpt = payload(".ckpt", wrap=lambda p: {"state_dict": {"model.diffusion_model.x": p}})
    with pytest.raises(UnsafeFileError) as e:
        build_model(setup_cfg(TINY, ["MODEL.DIFFUSION.WEIGHTS", ckpt]))
    _assert_refused(e, ckpt)
    clip = payload(".pt", wrap=lambda p: {"visual.conv1.weight": p})
    with pytest.raises(UnsafeFileError) as e:
        build_model(setup_cfg(TINY, ["MODEL.CLIP.WEIGHTS", clip]))
    _assert_refused(e, clip)


def test_odise_converter_refuses_payload(payload, tmp_path):
    import convert_odise_checkpoint as tool

    path = payload(".pth")
    with pytest.raises(SystemExit, match="Refusing to read"):
        tool.main([path, str(tmp_path / "out.pth")])
    assert not (tmp_path / "out.pth").exists()


def test_torchscript_tensors_read_without_loading_code(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 4)
            self.blocks = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.LayerNorm(3))
            self.register_buffer("mask", torch.arange(6.0).view(2, 3)[:, 1:])  # a non-contiguous view
            self.scale = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))

        def forward(self, x):
            return self.proj(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(Net(), torch.zeros(1, 3)).save(str(tmp_path / "net.pt"))
        expected = torch.jit.load(str(tmp_path / "net.pt")).state_dict()
    got = read_torchscript_tensors(str(tmp_path / "net.pt"))
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


@pytest.mark.parametrize("component", ["unet", "text_encoder"])
def test_diffusers_folder_with_payload_weights(payload, tmp_path, component):
    """MODEL.DIFFUSION.WEIGHTS as a diffusers folder: diffusers / transformers read .bin files
    with weights_only=True, so the payload is refused there too."""
    from detectron2.modeling import build_model

    import odise_ext  # noqa: F401
    from odise_ext.diffusion.sd_loading import build_text_encoder, build_unet, build_vae

    cfg = setup_cfg(TINY, [])
    folder = tmp_path / "sd"
    for name, build in (("unet", build_unet), ("vae", build_vae), ("text_encoder", build_text_encoder)):
        build(cfg).save_pretrained(str(folder / name), safe_serialization=False)
    # the pickle format (newer transformers save safetensors only: replace them)
    names = {"unet": "diffusion_pytorch_model.bin", "text_encoder": "pytorch_model.bin"}
    for f in os.listdir(folder / component):
        if f.endswith((".bin", ".safetensors")):
            os.remove(folder / component / f)
    os.replace(payload(".bin", wrap=lambda p: {"w": p}), folder / component / names[component])
    with pytest.raises(UnsafeFileError) as e:
        build_model(setup_cfg(TINY, ["MODEL.DIFFUSION.WEIGHTS", str(folder)]))
    _assert_refused(e, str(folder / component))
