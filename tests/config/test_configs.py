"""Every yaml under configs/ loads with add_odise_config; every tiny variant builds its model."""
import glob
import os

import pytest
import torch

import odise_ext  # noqa: F401  (registers models)
from odise_ext.config import get_odise_cfg, setup_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
# building blocks (base_tiny_diffusion.yaml, vpd_base_tiny.yaml) are merged into variants, not built
TINY = [p for p in ALL if os.sep + "testing" + os.sep in p and "base" not in os.path.basename(p).split("_")]


def test_there_are_configs():
    names = {os.path.relpath(p, ROOT) for p in ALL}
    assert "configs/odise_coco.yaml" in names
    assert "configs/testing/odise_tiny.yaml" in names
    assert "configs/testing/png_tiny.yaml" in names


@pytest.mark.parametrize("path", ALL, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_config_loads(path):
    cfg = setup_cfg(path, freeze=False)
    assert cfg.MODEL.META_ARCHITECTURE


@pytest.mark.parametrize("path", TINY, ids=lambda p: os.path.relpath(p, ROOT))
def test_tiny_variants_build(path):
    from detectron2.modeling import build_model

    cfg = setup_cfg(path, ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_BASE_: {os.path.join(ROOT, 'configs', 'testing', 'odise_tiny.yaml')}\nMODEL:\n  ODISE:\n    NOT_A_KEY: 1\n")
    with pytest.raises(KeyError, match="NOT_A_KEY"):
        setup_cfg(str(bad))


def test_add_odise_config_is_idempotent():
    cfg = get_odise_cfg()
    before = cfg.dump()
    odise_ext.add_odise_config(cfg)
    assert cfg.dump() == before
