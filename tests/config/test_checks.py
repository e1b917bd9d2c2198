"""Config values are checked before any build: one line naming the key, the value and the rule,
from setup_cfg and (as ``error: ...``, exit status 2, no traceback) from every tool."""
import os
import subprocess
import sys

import pytest
from PIL import Image

from odise_ext.config import setup_cfg
from odise_ext.config.checks import ConfigError, check_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = "configs/testing/odise_tiny.yaml"
PNG_TINY = "configs/testing/png_tiny.yaml"
DEPTH_TINY = "configs/testing/vpd_depth_tiny.yaml"

# (id, config, overrides, the words the message must hold: key, value, rule)
ROWS = [
    ("batch_zero", TINY, ["SOLVER.IMS_PER_BATCH", "0"], ["SOLVER.IMS_PER_BATCH = 0", "> 0"]),
    ("batch_negative", TINY, ["SOLVER.IMS_PER_BATCH", "-4"], ["SOLVER.IMS_PER_BATCH = -4", "> 0"]),
    ("max_iter_zero", TINY, ["SOLVER.MAX_ITER", "0"], ["SOLVER.MAX_ITER = 0", "> 0"]),
    ("max_iter_negative", TINY, ["SOLVER.MAX_ITER", "-3"], ["SOLVER.MAX_ITER = -3", "> 0"]),
    ("checkpoint_period_zero", TINY, ["SOLVER.CHECKPOINT_PERIOD", "0"], ["SOLVER.CHECKPOINT_PERIOD = 0", "> 0"]),
    ("eval_period_negative", TINY, ["TEST.EVAL_PERIOD", "-1"], ["TEST.EVAL_PERIOD = -1", ">= 0"]),
    ("workers_negative", TINY, ["DATALOADER.NUM_WORKERS", "-2"], ["DATALOADER.NUM_WORKERS = -2", ">= 0"]),
    ("steps_unsorted", TINY, ["SOLVER.STEPS", "(10, 5)"], ["SOLVER.STEPS = (10, 5)", "increasing"]),
    ("min_size_test_negative", TINY, ["INPUT.MIN_SIZE_TEST", "-1"], ["INPUT.MIN_SIZE_TEST = -1", ">= 0"]),
    ("max_size_test_zero", TINY, ["INPUT.MAX_SIZE_TEST", "0"], ["INPUT.MAX_SIZE_TEST = 0", "> 0"]),
    ("min_size_train_zero", TINY, ["INPUT.MIN_SIZE_TRAIN", "(0,)"], ["INPUT.MIN_SIZE_TRAIN = (0,)", "> 0"]),
    ("lsj_size_zero", TINY, ["DATA.LSJ.IMAGE_SIZE", "0"], ["DATA.LSJ.IMAGE_SIZE = 0", "> 0"]),
    ("lsj_scales_swapped", TINY, ["DATA.LSJ.MIN_SCALE", "2.0", "DATA.LSJ.MAX_SCALE", "1.0"],
     ["DATA.LSJ.MIN_SCALE = 2.0", "<= DATA.LSJ.MAX_SCALE = 1.0"]),
    ("crop_zero", TINY, ["INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "absolute", "INPUT.CROP.SIZE", "[0, 64]"],
     ["INPUT.CROP.SIZE = [0, 64]", "> 0"]),
    ("relative_crop_over_one", TINY, ["INPUT.CROP.ENABLED", "True", "INPUT.CROP.SIZE", "[1.5, 0.5]"],
     ["INPUT.CROP.SIZE = [1.5, 0.5]", "(0, 1]", "'relative_range'"]),
    ("max_input_pixels_zero", TINY, ["DATA.MAX_INPUT_PIXELS", "0"], ["DATA.MAX_INPUT_PIXELS = 0", "> 0"]),
    ("postprocess_chunk_zero", TINY, ["MODEL.MASK_FORMER.TEST.POSTPROCESS_CHUNK_PIXELS", "0"],
     ["MODEL.MASK_FORMER.TEST.POSTPROCESS_CHUNK_PIXELS = 0", "> 0"]),
    ("hidden_dim_30", TINY, ["MODEL.MASK_FORMER.HIDDEN_DIM", "30"],
     ["MODEL.MASK_FORMER.HIDDEN_DIM = 30", "divisible by MODEL.MASK_FORMER.NHEADS = 4"]),
    ("nheads_zero", TINY, ["MODEL.MASK_FORMER.NHEADS", "0"], ["MODEL.MASK_FORMER.NHEADS = 0", "> 0"]),
    ("pixel_decoder_heads", TINY, ["MODEL.MASK_FORMER.PIXEL_DECODER.NHEADS", "3"],
     ["MODEL.SEM_SEG_HEAD.CONVS_DIM = 32", "divisible by MODEL.MASK_FORMER.PIXEL_DECODER.NHEADS = 3"]),
    ("gn_groups_of_convs_dim", TINY, ["MODEL.SEM_SEG_HEAD.CONVS_DIM", "48", "MODEL.MASK_FORMER.PIXEL_DECODER.NHEADS", "4"],
     ["MODEL.SEM_SEG_HEAD.CONVS_DIM = 48", "divisible by 32"]),
    ("png_eipa_heads", PNG_TINY, ["MODEL.PNG.EIPA.NHEADS", "5"], ["MODEL.PNG.EIPA.DIM = ", "MODEL.PNG.EIPA.NHEADS = 5"]),
    ("png_decoder_heads", PNG_TINY, ["MODEL.PNG.DECODER.NHEADS", "7"],
     ["MODEL.PNG.HIDDEN_DIM = ", "divisible by MODEL.PNG.DECODER.NHEADS = 7"]),
    ("depth_gn_groups", DEPTH_TINY, ["MODEL.DEPTH_HEAD.GN_GROUPS", "7"],
     ["MODEL.DEPTH_HEAD.FUSE_DIM = ", "divisible by MODEL.DEPTH_HEAD.GN_GROUPS = 7"]),
]


@pytest.mark.parametrize("config, opts, words", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_setup_cfg_names_key_value_and_rule(config, opts, words):
    with pytest.raises(ConfigError) as e:
        setup_cfg(os.path.join(ROOT, config), opts)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


def test_batch_must_split_over_the_processes():
    cfg = setup_cfg(os.path.join(ROOT, TINY), ["SOLVER.IMS_PER_BATCH", "3"])
    check_cfg(cfg, world_size=3)
    with pytest.raises(ConfigError, match=r"SOLVER.IMS_PER_BATCH = 3 must be divisible by the number of processes \(2\)"):
        check_cfg(cfg, world_size=2)


def test_the_tiny_defaults_pass():
    for config in (TINY, PNG_TINY, DEPTH_TINY):
        check_cfg(setup_cfg(os.path.join(ROOT, config)), world_size=1)


def _tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("tool", ["train_net", "train_net_two_processes", "demo", "web_demo"])
def test_tools_print_one_line_and_exit_2(tool, tmp_path):
    bad = ["MODEL.MASK_FORMER.HIDDEN_DIM", "30"]
    if tool == "train_net":
        cmd = ["tools/train_net.py", "--config-file", TINY, "OUTPUT_DIR", str(tmp_path), *bad]
    elif tool == "train_net_two_processes":  # refused before the processes start
        cmd = ["tools/train_net.py", "--config-file", TINY, "--num-gpus", "2", "OUTPUT_DIR", str(tmp_path),
               "SOLVER.IMS_PER_BATCH", "3"]
        bad = None
    elif tool == "demo":
        image = tmp_path / "x.png"  # a real input: input files are checked before the config
        Image.new("RGB", (32, 32)).save(image)
        cmd = ["tools/demo.py", "--config-file", TINY, "--input", str(image), "--output", str(tmp_path / "o.png"),
               "--opts", *bad]
    else:
        cmd = ["tools/web_demo.py", "--config-file", TINY, "--port", "0", "--opts", *bad]
    proc = _tool(*cmd)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    expected = ("MODEL.MASK_FORMER.HIDDEN_DIM = 30 must be an integer > 0 divisible by MODEL.MASK_FORMER.NHEADS = 4"
                if bad else "SOLVER.IMS_PER_BATCH = 3 must be divisible by the number of processes (2)")
    assert errors == [f"error: {expected}"], proc.stderr[-3000:]
    assert not os.path.exists(tmp_path / "o.png")
