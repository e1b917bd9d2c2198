"""The real VPD / Meta-Prompts configs (configs/vpd/) build their models — with the tiny random SD
of configs/testing/base_tiny_diffusion.yaml swapped in for Stable Diffusion — and their
optimizers tune the UNet at the config's lr multiplier (parameter groups from
``OPTIMIZER.LR_MULTIPLIERS``), with gradient checkpointing on; a multiplier prefix that names no
parameter is an error."""
import glob
import os

import pytest
import torch
from detectron2.modeling import build_model

import odise_ext  # noqa: F401  (registers datasets and models)
from odise_ext.config import get_odise_cfg
from odise_ext.engine.optimizer import build_optimizer
from odise_ext.diffusion import TunedModule
from odise_ext.diffusion import DiffusionFeatureExtractor
from odise_ext.diffusion.tuned import RecordingCheckpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "vpd", "*.yaml")) if not p.endswith("base_vpd.yaml"))
TINY_SD = os.path.join(ROOT, "configs", "testing", "base_tiny_diffusion.yaml")


def real_config_with_tiny_sd(path):
    cfg = get_odise_cfg()
    cfg.merge_from_file(path)
    backbone = cfg.MODEL.BACKBONE.NAME
    cfg.merge_from_file(TINY_SD)  # widths and random weights only; the real taps / modes stay
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", backbone, "MODEL.DEVICE", "cpu"])
    if cfg.MODEL.SEM_SEG_HEAD.NORM == "SyncBN":
        cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    return cfg


def test_every_real_vpd_config_is_covered():
    names = {os.path.basename(p) for p in REAL}
    assert {"vpd_ade20k_semseg.yaml", "metaprompts_cityscapes_semseg.yaml", "vpd_nyu_depth.yaml",
            "metaprompts_kitti_depth.yaml", "vpd_refcoco.yaml", "vpd_coco_pose.yaml"} <= names


@pytest.mark.parametrize("path", REAL, ids=os.path.basename)
def test_real_config_tunes_the_unet_at_its_multiplier(path):
    cfg = real_config_with_tiny_sd(path)
    torch.manual_seed(0)
    model = build_model(cfg)
    extractors = [m for m in model.modules() if isinstance(m, DiffusionFeatureExtractor)]
    assert len(extractors) == 1
    ex = extractors[0]
    assert isinstance(ex.unet, TunedModule) and ex.unet.module.is_gradient_checkpointing
    blocks = [m for m in ex.unet.module.modules() if getattr(m, "gradient_checkpointing", False)]
    assert blocks and all(isinstance(m._gradient_checkpointing_func, RecordingCheckpoint) for m in blocks)
    optimizer = build_optimizer(cfg, model)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    (prefix, factor), = cfg.OPTIMIZER.LR_MULTIPLIERS
    assert 0 < factor < 1
    base = cfg.SOLVER.BASE_LR
    unet = list(ex.unet.parameters())
    assert unet and all(lr_of[id(p)] == pytest.approx(base * factor) for p in unet)
    others = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(prefix + ".")]
    assert others and all(lr_of[id(p)] == pytest.approx(base) for p in others)
    assert not any(id(p) in lr_of for p in ex.vae.parameters())  # frozen: no optimizer state


def test_unknown_lr_multiplier_prefix_is_an_error():
    cfg = real_config_with_tiny_sd(os.path.join(ROOT, "configs", "vpd", "vpd_nyu_depth.yaml"))
    cfg.OPTIMIZER.LR_MULTIPLIERS = [["backbone.bottom_up.feature_extractor.unet", 0.01]]
    with pytest.raises(ValueError, match="bottom_up.*matches no parameter"):
        build_optimizer(cfg, build_model(cfg))
