"""Unknown config keys name the closest existing ones; MODEL.DEVICE cuda without CUDA is named
before any model is built."""
import os

import pytest

from odise_ext.config import get_odise_cfg, setup_cfg
from odise_ext.config.suggest import UnknownConfigKeyError, all_keys, check_device, closest_keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "testing", "odise_tiny.yaml")


def test_all_keys_are_the_dotted_leaves():
    keys = all_keys(get_odise_cfg())
    assert "MODEL.DIFFUSION.DTYPE" in keys and "SOLVER.BASE_LR" in keys and "SEED" in keys
    assert "MODEL" not in keys and "MODEL.DIFFUSION" not in keys  # namespaces are not leaves


def test_closest_keys_by_spelling_and_by_last_part():
    keys = ["MODEL.DIFFUSION.DTYPE", "MODEL.DIFFUSION.WEIGHTS", "SEED", "SOLVER.BASE_LR"]
    assert closest_keys("MODEL.DIFUSION.DTYPE", keys)[0] == "MODEL.DIFFUSION.DTYPE"
    assert closest_keys("SOLVER.SEED", keys) == ["SEED"]  # right name, wrong namespace
    assert closest_keys("TOTALLY.ELSEWHERE", keys) == []


def test_typo_in_overrides_is_one_line_with_a_suggestion():
    with pytest.raises(UnknownConfigKeyError) as info:
        setup_cfg(TINY, ["MODEL.DIFUSION.DTYPE", "float32"])
    msg = str(info.value)
    assert "\n" not in msg and not msg.startswith("'")
    assert "unknown config key MODEL.DIFUSION.DTYPE" in msg and "command-line overrides" in msg
    assert "did you mean MODEL.DIFFUSION.DTYPE" in msg
    assert isinstance(info.value, KeyError) and info.value.key == "MODEL.DIFUSION.DTYPE"


def test_typo_in_yaml_names_the_file_and_the_closest_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_BASE_: {TINY}\nSOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(UnknownConfigKeyError, match=r"SOLVER.BASE_LRR in .*bad.yaml; did you mean SOLVER.BASE_LR"):
        setup_cfg(str(bad))


def test_key_with_nothing_close_says_so():
    with pytest.raises(UnknownConfigKeyError, match="no config key is close to it"):
        setup_cfg(TINY, ["QQQ.ZZZ", "1"])


def test_cuda_device_without_cuda_says_what_to_set(monkeypatch):
    import torch

    cfg = setup_cfg(TINY, ["MODEL.DEVICE", "cuda"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no usable CUDA GPU.*set MODEL.DEVICE cpu"):
        check_device(cfg)
    check_device(setup_cfg(TINY, ["MODEL.DEVICE", "cpu"]))  # CPU always works


def test_cuda_index_beyond_the_gpus_is_named(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device(setup_cfg(TINY, ["MODEL.DEVICE", "cuda:0"]))
    with pytest.raises(ValueError, match="'cuda:1' but this machine has 1 CUDA GPU"):
        check_device(setup_cfg(TINY, ["MODEL.DEVICE", "cuda:1"]))
