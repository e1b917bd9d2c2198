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


# Hand-written fixtures, typed from the released checkpoints' key lists in shared/reference/ (file
# and line of each), not read from the converter's own lists: (released key, released shape, our
# key or None = stored twice and mapped once, our shape).
_HAND_WRITTEN = {
    ("vpd_depth", "vpd_nyu_depth.yaml"): [
        # vpd_depth_release_ckpt_keys.tsv.gz line 3
        ("encoder.gamma", (768,), "backbone.feature_extractor.prompt.adapter.gamma", (768,)),
        # line 4
        ("encoder.class_embeddings", (27, 768), "backbone.feature_extractor.prompt.class_embeddings", (27, 768)),
        # line 13
        ("encoder.out_layer.0.weight", (1536, 3520, 1, 1), "depth_head.out_layer.0.weight", (1536, 3520, 1, 1)),
        # line 17
        ("encoder.encoder_vq.encoder.conv_in.weight", (128, 3, 3, 3),
         "backbone.feature_extractor.vae.module.encoder.conv_in.weight", (128, 3, 3, 3)),
        # line 145
        ("encoder.unet.unet.diffusion_model.input_blocks.1.1.proj_in.weight", (320, 320, 1, 1),
         "backbone.feature_extractor.unet.module.down_blocks.0.attentions.0.proj_in.weight", (320, 320, 1, 1)),
        # line 147
        ("encoder.unet.unet.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", (320, 320),
         "backbone.feature_extractor.unet.module.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
         (320, 320)),
        # line 221
        ("encoder.unet.unet.diffusion_model.input_blocks.4.1.proj_in.weight", (640, 640, 1, 1),
         "backbone.feature_extractor.unet.module.down_blocks.1.attentions.0.proj_in.weight", (640, 640, 1, 1)),
    ],
    ("vpd_refer", "vpd_refcoco.yaml"): [
        # vpd_refer_state_dict_keys.tsv.gz line 3
        ("gamma", (768,), "backbone.feature_extractor.prompt.adapter.gamma", (768,)),
        # line 803
        ("text_adapter.fc.2.bias", (768,), "backbone.feature_extractor.prompt.adapter.mlp.2.bias", (768,)),
        # line 804: conv1_4 = the first conv of the stride-32 fusion block
        ("classifier.conv1_4.weight", (640, 2637, 3, 3), "refer_decoder.fuse32.convs.0.weight", (640, 2637, 3, 3)),
        # line 837: bn2_2 = the second norm of the stride-8 fusion block
        ("classifier.bn2_2.running_mean", (640,), "refer_decoder.fuse8.convs.1.norm.running_mean", (640,)),
        # line 840
        ("classifier.conv1_1.weight", (2, 640, 1, 1), "refer_decoder.predictor.weight", (2, 640, 1, 1)),
    ],
    ("mp_depth", "metaprompts_nyu_depth.yaml"): [
        # mp_depth_release_ckpt_keys.tsv.gz line 3
        ("encoder.t1", (1, 1280), "backbone.feature_extractor.loop_time_embeds.0", (1, 1280)),
        # line 6
        ("encoder.meta_prompts2", (50, 768), "backbone.feature_extractor.prompt.step_prompts.1", (50, 768)),
        # line 7
        ("encoder.t3", (1, 1280), "backbone.feature_extractor.loop_time_embeds.2", (1, 1280)),
        # line 78: the UNet's output head stored again for step 2
        ("encoder.cross_unet_conv2.0.weight", (320,), None, None),
        # line 90
        ("encoder.text_adapter3.fc.0.weight", (768, 768), "backbone.feature_extractor.prompt.step_mlps.2.0.weight",
         (768, 768)),
    ],
}


def _model_tensor(model, name):
    try:
        return model.get_parameter(name)
    except AttributeError:
        return model.get_buffer(name)


@pytest.mark.parametrize("fmt,config", sorted(_HAND_WRITTEN))
def test_hand_written_release_keys_map_onto_the_real_model(fmt, config):
    """A handful of released keys, typed by hand: the shipped key list has them with the released
    shape, the converter maps each to the key of ours written here, and the real config's model
    (meta device) has that key with that shape."""
    from odise_ext.checkpoint import name_map

    shapes, mapping = release_key_shapes(fmt), name_map(fmt)
    model = tool("convert_vpd_checkpoint")._model_of(os.path.join(ROOT, "configs", "vpd", config))
    for release_key, release_shape, ours, our_shape in _HAND_WRITTEN[(fmt, config)]:
        assert shapes[release_key] == release_shape, release_key
        assert mapping[release_key][0] == ours, release_key
        if ours is not None:
            assert tuple(_model_tensor(model, ours).shape) == our_shape, ours
