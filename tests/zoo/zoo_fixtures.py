"""Fixtures of the zoo tests (imported by each test module): a loopback server, a private zoo
cache, catalog overrides, and released-layout checkpoints written here."""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from loopback import LoopbackServer  # noqa: E402


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def zoo_cache(tmp_path, monkeypatch):
    cache = tmp_path / "zoo-cache"
    monkeypatch.setenv("ODISE_EXT_ZOO_CACHE", str(cache))
    monkeypatch.delenv("ODISE_EXT_ZOO_URL_BASE", raising=False)
    monkeypatch.delenv("ODISE_EXT_ZOO_CATALOG", raising=False)
    return cache


@pytest.fixture
def set_catalog(tmp_path, monkeypatch):
    """``set_catalog({"odise://x": {...}})``: the entries of $ODISE_EXT_ZOO_CATALOG (a JSON file)."""

    def write(entries):
        path = tmp_path / "catalog.json"
        path.write_text(json.dumps(entries))
        monkeypatch.setenv("ODISE_EXT_ZOO_CATALOG", str(path))
        return path

    return write


def odise_release_bytes(tmp_path, seed=1):
    """(bytes of a tiny ODISE checkpoint in ODISE's released layout, the model it was taken from)."""
    import torch
    from detectron2.modeling import build_model

    sys.path.insert(0, os.path.join(ROOT, "tests", "odise"))
    from test_convert_odise import _to_odise_names  # ODISE's names, written independently of the converter

    from odise_ext.config import setup_cfg

    cfg = setup_cfg(os.path.join(ROOT, "configs/testing/odise_tiny.yaml"))
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    path = tmp_path / f"odise_release_{seed}.pth"
    torch.save({"model": _to_odise_names(model.state_dict())}, path)
    return path.read_bytes(), model


def vpd_release_bytes(tmp_path, fmt="vpd_depth", seed=0):
    """Bytes of a scaled-down checkpoint in a released VPD / Meta-Prompts layout, and its state dict."""
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests", "vpd"))
    from vpd_release import release_checkpoint

    state = release_checkpoint(fmt, seed=seed)
    path = tmp_path / f"{fmt}_{seed}.pth"
    torch.save({"model": state}, path)
    return path.read_bytes(), state
