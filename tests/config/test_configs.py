"""Every yaml under configs/ loads with add_odise_config and names registered components; every
tiny variant builds its model, and every meta-architecture of the project has one."""
import glob
import os

import pytest
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

import odise_ext  # noqa: F401  (registers models)
from odise_ext.config import get_odise_cfg, setup_cfg
from odise_ext.diffusion.prompts import PROMPT_REGISTRY

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
# building blocks (configs/base/*, base_vpd.yaml, base_tiny_diffusion.yaml, vpd_base_tiny.yaml) are
# merged into variants, not built
FRAGMENTS = [p for p in ALL if os.sep + "base" + os.sep in p or "base" in os.path.basename(p).split("_")]
TINY = [p for p in ALL if os.sep + "testing" + os.sep in p and p not in FRAGMENTS]


def _ours(registry):
    return {name for name, obj in registry if getattr(obj, "__module__", "").startswith("odise_ext.")}


def test_every_meta_architecture_has_a_tiny_config():
    """Each of the project's meta-architectures is built by some tiny config (so by the test below)."""
    ours = _ours(META_ARCH_REGISTRY)
    assert {"ODISE", "PNGDiffusion", "DenseSemanticSegmentor", "DenseDepthEstimator", "DenseReferSegmentor",
            "DensePoseEstimator"} <= ours
    built = {setup_cfg(p, freeze=False).MODEL.META_ARCHITECTURE for p in TINY}
    assert ours <= built, f"no tiny config for {sorted(ours - built)}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_config_loads(path):
    cfg = setup_cfg(path, freeze=False)
    # What a config names exists (a typo would otherwise surface only when the model is built).
    assert cfg.MODEL.BACKBONE.NAME in BACKBONE_REGISTRY
    assert cfg.MODEL.DIFFUSION.PROMPT.NAME in PROMPT_REGISTRY
    if path not in FRAGMENTS:
        assert cfg.MODEL.META_ARCHITECTURE in _ours(META_ARCH_REGISTRY), cfg.MODEL.META_ARCHITECTURE


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


def test_replaced_png_eval_key_names_its_replacement(tmp_path):
    with pytest.raises(KeyError, match="MODEL.PNG.EVAL_PROTOCOL"):
        setup_cfg(os.path.join(ROOT, "configs", "testing", "png_tiny.yaml"), ["MODEL.PNG.EVAL_RESOLUTION", "0"])
    old = tmp_path / "old.yaml"
    old.write_text(f"_BASE_: {os.path.join(ROOT, 'configs', 'testing', 'png_tiny.yaml')}\nMODEL:\n  PNG:\n    EVAL_RESOLUTION: 512\n")
    with pytest.raises(KeyError, match="MODEL.PNG.EVAL_PROTOCOL"):
        setup_cfg(str(old))
