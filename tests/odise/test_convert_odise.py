"""ODISE release checkpoints convert onto our model: every key, every shape."""
import gzip
import os
import re
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

import odise_ext  # noqa: F401
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper
from odise_ext.odise.release import FROZEN_PREFIXES, convert_odise_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_odise_checkpoint as tool  # noqa: E402

# ODISE's checkpoint key names and shapes (from ../shared/reference/, gzipped so that the test
# runs on any clean checkout)
REF = os.path.join(ROOT, "tests", "fixtures")


def _read_tsv(name):
    out = {}
    for line in gzip.open(os.path.join(REF, name + ".gz"), "rt"):
        if line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape = line.split("\t")[:2]
        dims = () if shape == "scalar" else tuple(int(x) for x in shape.split("x"))
        out[key] = torch.empty(dims, device="meta")
    return out


def test_release_keys_fit_the_real_architecture():
    label = _read_tsv("odise_label_state_dict_keys.tsv")
    full = _read_tsv("odise_label_full_state_dict_keys.tsv")
    converted, frozen, other = convert_odise_state_dict(label)
    assert frozen == [] and other == ["criterion.empty_weight"]
    assert tool.check_against_config(converted, os.path.join(ROOT, "configs", "odise_coco.yaml")) == []
    # the full checkpoint differs only by frozen SD / CLIP weights
    converted_full, frozen_full, _ = convert_odise_state_dict(full)
    assert sorted(converted_full) == sorted(converted)
    assert frozen_full and all(k.startswith(FROZEN_PREFIXES) for k in frozen_full)


def _to_odise_names(state):
    """ODISE's names written out independently of the converter (inverse direction)."""
    out = {}
    for k, v in state.items():
        if not torch.is_tensor(v):
            continue
        k2 = k.replace("backbone.feature_extractor.prompt.", "backbone.feature_extractor.")
        k2 = re.sub(r"^backbone\.feature_projections\.(\d+)\.", r"backbone.feature_projections.\1.0.", k2)
        k2 = k2.replace("sem_seg_head.predictor.class_embed.post_mask_embed.", "sem_seg_head.predictor.post_mask_embed.")
        k2 = k2.replace("sem_seg_head.predictor.class_embed.category_head.", "category_head.")
        k2 = k2.replace("criterion.loss_terms.ClassLoss.empty_weight", "criterion.empty_weight")
        out[k2] = v
    return out


def test_round_trip_on_the_tiny_model(tmp_path):
    cfg = setup_cfg("configs/testing/odise_tiny.yaml")
    torch.manual_seed(1)
    src = build_model(cfg).eval()
    src_file = tmp_path / "odise_release.pth"
    torch.save({"model": _to_odise_names(src.state_dict())}, src_file)
    out_file = tmp_path / "ours.pth"
    tool.main([str(src_file), str(out_file)])

    torch.manual_seed(2)
    dst = build_model(cfg).eval()
    DetectionCheckpointer(dst).load(str(out_file))
    inputs = [build_dataset_mapper(cfg, False)(DatasetCatalog.get(cfg.DATASETS.TEST[0])[0])]
    with torch.no_grad():
        a = src(inputs)[0]["sem_seg"]
        b = dst(inputs)[0]["sem_seg"]
    assert torch.equal(a, b)


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such checkpoint"):
        tool.main([str(tmp_path / "nope.pth"), str(tmp_path / "o.pth")])
    bad = tmp_path / "bad.pth"
    torch.save([1, 2, 3], bad)
    with pytest.raises(SystemExit, match="expected an ODISE checkpoint"):
        tool.main([str(bad), str(tmp_path / "o.pth")])
