"""The user's input mistakes end every tool with one line on stderr (status 2, no traceback),
before any model is built: a misspelt config key names the closest keys, MODEL.DEVICE cuda
without CUDA says what to set, a missing weights file is named.

All invocations run as ``__main__`` in one interpreter (``runpy``), so torch is imported once."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = "configs/testing/odise_tiny.yaml"

HARNESS = r"""
import contextlib, io, json, runpy, sys
sys.path.insert(0, "tools")
import torch
import odise_ext
from detectron2.modeling import META_ARCH_REGISTRY
built = []
for name, _ in list(META_ARCH_REGISTRY):  # any model build is recorded (and would be too late)
    cls = META_ARCH_REGISTRY.get(name)
    def recording(init):
        def __init__(self, *a, **k):
            built.append(type(self).__name__)
            init(self, *a, **k)
        return __init__
    cls.__init__ = recording(cls.__init__)
results = []
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    err, code = io.StringIO(), None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as e:
            code = e.code
        except Exception as e:
            code = "raised " + type(e).__name__ + ": " + str(e)
    results.append({"code": code, "err": err.getvalue(), "built": list(built), "cuda": torch.cuda.is_available()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one_line")
    image = tmp / "in.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    ckpt = tmp / "release.pth"
    ckpt.write_bytes(b"not read: the config is checked first")
    missing = str(tmp / "missing.pth")
    typo = ["MODEL.DIFUSION.DTYPE", "float32"]
    cases = {
        "train_net_typo": ["tools/train_net.py", "--config-file", TINY, *typo],
        "demo_typo": ["tools/demo.py", "--config-file", TINY, "--input", str(image), "--output", str(tmp / "o.png"),
                      "--opts", *typo],
        "web_demo_typo": ["tools/web_demo.py", "--config-file", TINY, "--opts", *typo],
        "convert_odise_typo": ["tools/convert_odise_checkpoint.py", str(ckpt), str(tmp / "out.pth"),
                               "--config-file", str(tmp / "typo.yaml")],
        "convert_vpd_typo": ["tools/convert_vpd_checkpoint.py", str(ckpt), str(tmp / "out.pth"),
                             "--config-file", str(tmp / "typo.yaml")],
        "train_net_cuda": ["tools/train_net.py", "--config-file", TINY, "MODEL.DEVICE", "cuda"],
        "demo_cuda": ["tools/demo.py", "--config-file", TINY, "--input", str(image), "--output", str(tmp / "o.png"),
                      "--opts", "MODEL.DEVICE", "cuda"],
        "train_net_weights": ["tools/train_net.py", "--config-file", TINY, "--eval-only", "MODEL.WEIGHTS", missing],
        "demo_weights": ["tools/demo.py", "--config-file", TINY, "--input", str(image), "--output", str(tmp / "o.png"),
                         "--opts", "MODEL.WEIGHTS", missing],
        "train_net_dataset": ["tools/train_net.py", "--config-file", TINY, "DATASETS.TRAIN",
                              "('shapes_train_panoptic_with_semseg',)"],
        "demo_missing_image": ["tools/demo.py", "--config-file", TINY, "--input", str(tmp / "nope.jpg"),
                               "--output", str(tmp / "o.png")],
    }
    (tmp / "typo.yaml").write_text(f"_BASE_: {ROOT / TINY}\nSOLVER:\n  BASE_LRR: 0.1\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(list(cases.values()))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(cases, json.loads(proc.stdout.strip().splitlines()[-1])))


def _one_line(res):
    lines = [line for line in res["err"].splitlines() if line.strip()]
    assert res["code"] == 2 or isinstance(res["code"], str) and not res["code"].startswith("raised"), res
    assert "Traceback" not in res["err"], res["err"][-2000:]
    return lines[-1] if lines else str(res["code"])


@pytest.mark.parametrize("case", ["train_net_typo", "demo_typo", "web_demo_typo"])
def test_misspelt_key_on_the_command_line_names_the_closest(runs, case):
    res = runs[case]
    assert res["code"] == 2 and res["err"].count("\n") == 1, res
    assert res["err"].strip() == ("error: unknown config key MODEL.DIFUSION.DTYPE in the command-line overrides; "
                                  "did you mean MODEL.DIFFUSION.DTYPE?")
    assert res["built"] == []


@pytest.mark.parametrize("case", ["convert_odise_typo", "convert_vpd_typo"])
def test_misspelt_key_in_a_yaml_given_to_a_converter(runs, case):
    res = runs[case]
    assert res["code"] == 2 and res["err"].count("\n") == 1, res
    assert "unknown config key SOLVER.BASE_LRR in" in res["err"] and "did you mean SOLVER.BASE_LR?" in res["err"]


@pytest.mark.parametrize("case", ["train_net_cuda", "demo_cuda"])
def test_cuda_device_without_cuda_says_what_to_set(runs, case):
    res = runs[case]
    if res["cuda"]:
        pytest.skip("this machine has CUDA")
    assert res["code"] == 2 and "Traceback" not in res["err"], res
    assert "MODEL.DEVICE is 'cuda' but this machine has no usable CUDA GPU" in res["err"]
    assert "set MODEL.DEVICE cpu" in res["err"] and res["built"] == []


@pytest.mark.parametrize("case", ["train_net_weights", "demo_weights"])
def test_missing_weights_are_named_before_the_build(runs, case):
    res = runs[case]
    assert res["code"] == 2 and "Traceback" not in res["err"], res
    assert "MODEL.WEIGHTS=" in res["err"] and "missing.pth does not exist" in res["err"] and res["built"] == []


def test_missing_image_is_named_before_the_build(runs):
    res = runs["demo_missing_image"]
    assert "nope.jpg' does not exist" in str(res["code"]) and res["built"] == []


def test_misspelt_dataset_name_names_the_registered_one(runs):
    res = runs["train_net_dataset"]
    assert res["code"] == 2 and res["err"].count("\n") == 1, res
    assert res["err"].strip() == ("error: DATASETS.TRAIN: 'shapes_train_panoptic_with_semseg' is not a registered "
                                  "dataset; did you mean shapes_train_panoptic_with_sem_seg?")
    assert res["built"] == []
