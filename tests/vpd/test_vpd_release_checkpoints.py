"""``tools/convert_vpd_checkpoint.py`` and ``odise_ext.checkpoint``: every released key
maps to one of ours and back, wrong keys are errors naming them, full-size shapes fit the real
configs, and a checkpoint is only ever read with ``weights_only=True``."""
import os

import pytest
import torch
from detectron2.modeling import build_model

from odise_ext.utils.safe_load import UnsafeFileError
from odise_ext.checkpoint import (
    check_against_model,
    convert_ours_to_release,
    convert_release_to_ours,
    load_release_checkpoint,
    release_key_shapes,
)
from vpd_release import ROOT, release_checkpoint, scaled_config, tiny_shape, tool


@pytest.mark.parametrize("fmt", ["vpd_depth", "mp_depth", "vpd_seg", "vpd_refer", "mp_seg_ade20k", "mp_seg_cityscapes",
                                 "mp_seg_cityscapes_extra"])
def test_release_keys_round_trip(fmt):
    release = release_checkpoint(fmt)
    ours, dropped = convert_release_to_ours(release, fmt, check_shapes=False)
    back = convert_ours_to_release(ours, fmt, dropped)
    assert list(back) == list(release_key_shapes(fmt))
    for k, v in release.items():
        assert torch.equal(back[k], v), k


def test_missing_unexpected_and_misshaped_keys_are_errors_naming_them():
    release = release_checkpoint("vpd_depth")
    broken = dict(release)
    del broken["encoder.layer2.0.bias"]
    broken["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['encoder.layer2.0.bias'\].*unexpected keys \['encoder.extra.weight'\]"):
        convert_release_to_ours(broken, "vpd_depth", check_shapes=False)
    with pytest.raises(ValueError, match="shapes differ from the released model"):
        convert_release_to_ours(release, "vpd_depth", check_shapes=True)  # scaled-down shapes
    dup = release_checkpoint("mp_depth")
    dup["encoder.cross_unet_conv3.2.bias"] = dup["encoder.cross_unet_conv3.2.bias"] + 1
    with pytest.raises(ValueError, match="cross_unet_conv3.2.bias must equal"):
        convert_release_to_ours(dup, "mp_depth", check_shapes=False)


class _Payload:
    """Unpickling this object creates a file: what a malicious checkpoint could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"encoder.gamma": torch.zeros(3)}, "x": _Payload(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(UnsafeFileError, match="would execute code stored in the file"):
        load_release_checkpoint(str(path))
    convert_vpd_checkpoint = tool("convert_vpd_checkpoint")
    with pytest.raises(SystemExit, match="would execute code stored in the file"):
        convert_vpd_checkpoint.main([str(path), str(tmp_path / "out.pth")])
    assert not marker.exists()
    assert not (tmp_path / "out.pth").exists()


def test_tool_converts_a_release_file_and_back(tmp_path):
    release = release_checkpoint("vpd_depth")
    src = tmp_path / "vpd_depth.pth"
    torch.save({"model": {"module." + k: v for k, v in release.items()}}, src)
    convert_vpd_checkpoint = tool("convert_vpd_checkpoint")
    convert_vpd_checkpoint.main([str(src), str(tmp_path / "ours.pth"), "--no-release-shapes"])
    ours = torch.load(tmp_path / "ours.pth", weights_only=True)
    assert ours["release_format"] == "vpd_depth"
    assert "depth_head.layer2.weight" in ours["model"]
    convert_vpd_checkpoint.main([str(tmp_path / "ours.pth"), str(tmp_path / "back.pth"), "--to-release"])
    back = torch.load(tmp_path / "back.pth", weights_only=True)["model"]
    assert set(back) == set(release) and all(torch.equal(back[k], v) for k, v in release.items())


@pytest.mark.parametrize(
    "fmt,config,opts",
    [
        ("vpd_seg", "vpd_ade20k_semseg.yaml", []),  # outputs: tests/vpd/test_vpd_seg_exactness.py
        ("vpd_refer", "vpd_refcoco.yaml", []),  # outputs: tests/vpd/test_vpd_refer_exactness.py
    ],
)
def test_seg_and_refer_release_layouts_map_onto_our_models(fmt, config, opts):
    """Every released key of the full-size segmentation and referring layouts has one of ours in
    the scaled-down model, of the same rank, and back."""
    torch.manual_seed(0)
    model = build_model(scaled_config(config, *opts))
    prefix = {"vpd_seg": "backbone.bottom_up.feature_extractor.", "vpd_refer": "backbone.feature_extractor."}[fmt]
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    vae = model.get_submodule(prefix + "vae.module")
    ours.update({k: v for k, v in vae.state_dict(prefix=prefix + "vae.module.").items() if ".decoder." not in k})
    shapes = release_key_shapes(fmt)
    dropped = {k: torch.zeros(tiny_shape(s)) for k, s in shapes.items() if k.startswith("sd_model.")}
    release = convert_ours_to_release(ours, fmt, dropped)
    assert list(release) == list(shapes)
    assert all(release[k].dim() == len(s) for k, s in shapes.items())
    back, kept = convert_release_to_ours(release, fmt, check_shapes=False)
    assert set(kept) == set(dropped)
    assert check_against_model(back, model, fmt) == []


@pytest.mark.parametrize(
    "fmt,config",
    [("vpd_depth", "vpd_nyu_depth.yaml"), ("mp_depth", "metaprompts_nyu_depth.yaml"),
     ("mp_depth", "metaprompts_kitti_depth.yaml"), ("vpd_seg", "vpd_ade20k_semseg.yaml")],
)
def test_full_size_release_shapes_fit_the_real_configs(fmt, config):
    """Every released key and full-size shape fits the real config's model (built on the meta
    device: no memory, no weights)."""
    convert_vpd_checkpoint = tool("convert_vpd_checkpoint")
    model = convert_vpd_checkpoint._model_of(os.path.join(ROOT, "configs", "vpd", config))
    release = {k: torch.empty(s, device="meta") for k, s in release_key_shapes(fmt).items()}
    converted, _ = convert_release_to_ours(release, fmt, check_shapes=True)
    assert check_against_model(converted, model, fmt) == []


def test_norm_epsilons_are_the_reference_ones():
    """GroupNorm eps: UNet ResBlocks (and its output head) 1e-5; SpatialTransformer and every VAE
    norm 1e-6 — as in the ldm code the released models ran."""
    model = tool("convert_vpd_checkpoint")._model_of(os.path.join(ROOT, "configs", "vpd", "vpd_nyu_depth.yaml"))
    ex = model.backbone.feature_extractor
    eps = {}
    for name, m in ex.unet.module.named_modules():
        if isinstance(m, torch.nn.GroupNorm):
            kind = "transformer" if ".attentions." in name else "resnet"
            eps.setdefault(kind, set()).add(m.eps)
    eps["vae"] = {m.eps for m in ex.vae.module.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert eps == {"resnet": {1e-5}, "transformer": {1e-6}, "vae": {1e-6}}
