"""Released VPD / Meta-Prompts checkpoints: conversion and reference-exact outputs.

A checkpoint in the released key layout is written by the test: every key of the released key
list (``odise_ext/utils/vpd_release_keys/*.tsv.gz``, copied from the released files) with a
scaled-down shape (every dimension >= 128 divided by 8, e.g. SD's 320/640/1280 UNet widths become
40/80/160, CLIP's 768 becomes 96) and random values. It must convert, load into the model of the
real config (with an SD of those widths), and give the output of an independent forward written
here from the definition of the public model (diffusers' UNet / VAE used directly, every other
layer written with torch.nn.functional on the released tensors).
"""
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

import odise_ext  # noqa: F401  (registers models)
from odise_ext.config import get_odise_cfg
from odise_ext.utils.vpd_checkpoint import (
    check_against_model,
    convert_ours_to_release,
    convert_release_to_ours,
    detect_release_format,
    load_release_checkpoint,
    release_key_shapes,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = 8  # GroupNorm groups of the scaled-down model (SD: 32, VPD necks: 16)


def tiny_shape(shape):
    return tuple(d // 8 if d >= 128 else d for d in shape)


def release_checkpoint(fmt, seed=0):
    """A random state dict with every released key of ``fmt``, scaled-down shapes."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in release_key_shapes(fmt).items():
        shape = tiny_shape(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            out[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    for dup, orig in [(f"encoder.cross_unet_conv{i}.{j}.{p}", f"encoder.unet.unet.diffusion_model.out.{j}.{p}")
                      for i in (2, 3) for j in (0, 2) for p in ("weight", "bias")]:
        if dup in out:
            out[dup] = out[orig].clone()
    return out


def scaled_config(name, *opts):
    """The real config ``configs/vpd/<name>`` with SD (and the heads) scaled down by 8."""
    cfg = get_odise_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "vpd", name))
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu",
        "MODEL.DIFFUSION.WEIGHTS", "random",
        "MODEL.DIFFUSION.UNET_CONFIG.BLOCK_OUT_CHANNELS", [40, 80, 160, 160],
        "MODEL.DIFFUSION.UNET_CONFIG.CROSS_ATTENTION_DIM", 96,
        "MODEL.DIFFUSION.UNET_CONFIG.NORM_NUM_GROUPS", GROUPS,
        "MODEL.DIFFUSION.VAE_CONFIG.BLOCK_OUT_CHANNELS", [16, 32, 64, 64],
        "MODEL.DIFFUSION.VAE_CONFIG.NORM_NUM_GROUPS", GROUPS,
        "MODEL.DIFFUSION.TEXT_ENCODER_CONFIG.HIDDEN_SIZE", 96,
        "MODEL.DIFFUSION.TEXT_ENCODER_CONFIG.INTERMEDIATE_SIZE", 96,
        "MODEL.DIFFUSION.TEXT_ENCODER_CONFIG.NUM_HIDDEN_LAYERS", 1,
        "MODEL.DIFFUSION.TEXT_ENCODER_CONFIG.NUM_ATTENTION_HEADS", 2,
        "MODEL.VPD.BACKBONE.GRADIENT_CHECKPOINTING", False,
        "MODEL.VPD.DEPTH.GN_GROUPS", GROUPS,
        "MODEL.VPD.DEPTH.HIDDEN_DIM", 24,
        "MODEL.VPD.DEPTH.FUSE_DIM", 192,
        *opts,
    ])
    return cfg


def converted_model(cfg, fmt, release):
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    converted, dropped = convert_release_to_ours(release, fmt, check_shapes=False)
    problems = check_against_model(converted, model, fmt)
    assert problems == []
    incompatible = model.load_state_dict(converted, strict=False)
    assert incompatible.unexpected_keys == []
    # only the parts the released model never runs (and the frozen-source records) stay as built
    unused = {
        "vpd_depth": ("unet.module.conv_norm_out.", "unet.module.conv_out."),
        "mp_depth": ("unet.module.time_embedding.",),
    }[fmt]
    assert incompatible.missing_keys and all(
        k.endswith("_extra_state") or k.startswith(tuple("backbone.feature_extractor." + u for u in unused))
        for k in incompatible.missing_keys
    ), incompatible.missing_keys
    return model, converted, dropped


# ---- independent forward (the public model's definition) ----------------------------------------
def diffusers_parts(release, prefix, cfg):
    """diffusers UNet / VAE with the released (ldm-named) weights, via diffusers' own converter."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from odise_ext.modeling.backbone.sd_loading import build_unet, build_vae

    unet, vae = build_unet(cfg).eval(), build_vae(cfg).eval()
    assert isinstance(unet, UNet2DConditionModel) and isinstance(vae, AutoencoderKL)
    unet_sd = {"model.diffusion_model." + k[len(prefix + "unet.unet.diffusion_model."):]: v
               for k, v in release.items() if k.startswith(prefix + "unet.unet.diffusion_model.")}
    vae_sd = {"first_stage_model." + k[len(prefix + "encoder_vq."):]: v
              for k, v in release.items() if k.startswith(prefix + "encoder_vq.")}
    unet.load_state_dict(convert_ldm_unet_checkpoint(unet_sd, dict(unet.config)), strict=False)
    vae.load_state_dict(convert_ldm_vae_checkpoint(vae_sd, dict(vae.config)), strict=False)
    return unet, vae


def unet_features(unet, latent, context, emb_override=None):
    """Outputs of ldm output_blocks 1, 4, 7, 11 (strides 64, 32, 16, 8 of the image) and the
    UNet output."""
    blocks = [unet.up_blocks[0].resnets[1], unet.up_blocks[1].attentions[1], unet.up_blocks[2].attentions[1],
              unet.up_blocks[3]]
    feats = [None] * 4

    def keep(i):
        def hook(module, args, out):
            feats[i] = out[0] if isinstance(out, tuple) else out
        return hook

    handles = [b.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
    if emb_override is not None:
        handles.append(unet.time_embedding.register_forward_hook(lambda m, a, o: emb_override.expand(o.shape[0], -1)))
    out = unet(latent, torch.ones(latent.shape[0], dtype=torch.long), encoder_hidden_states=context).sample
    for h in handles:
        h.remove()
    return feats, out


def bn(x, r, name):
    return F.batch_norm(x, r[name + ".running_mean"], r[name + ".running_var"], r[name + ".weight"],
                        r[name + ".bias"], training=False, eps=1e-5)


def gn(x, r, name):
    return F.group_norm(x, GROUPS, r[name + ".weight"], r[name + ".bias"], eps=1e-5)


def conv(x, r, name, **kw):
    return F.conv2d(x, r[name + ".weight"], r.get(name + ".bias"), **kw)


def depth_decoder(x, r, upsample, max_depth):
    for i in (0, 3, 6):
        x = F.relu(bn(F.conv_transpose2d(x, r[f"decoder.deconv_layers.{i}.weight"], stride=2), r,
                      f"decoder.deconv_layers.{i + 1}"))
    x = F.relu(bn(conv(x, r, "decoder.conv_layers.0", padding=1), r, "decoder.conv_layers.1"))
    if upsample:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    x = conv(F.relu(conv(x, r, "last_layer_depth.0", padding=1)), r, "last_layer_depth.2", padding=1)
    return torch.sigmoid(x) * max_depth


def vpd_depth_reference(r, unet, vae, window, scene_id):
    """VPD depth of one window [1, 3, h, w] in [0, 1] -> [1, 1, h, w] metres."""
    h, w = window.shape[-2:]
    x = F.pad(window * 2 - 1, (0, (-w) % 64, 0, (-h) % 64))  # zero padding after the normalisation
    latent = vae.quant_conv(vae.encoder(x))[:, :4]  # posterior mean, no latent scale
    c = r["encoder.class_embeddings"][scene_id][None]
    mlp = F.linear(F.gelu(F.linear(c, r["encoder.text_adapter.fc.0.weight"], r["encoder.text_adapter.fc.0.bias"])),
                   r["encoder.text_adapter.fc.2.weight"], r["encoder.text_adapter.fc.2.bias"])
    context = (c + r["encoder.gamma"] * mlp)[:, None]  # one token per image
    (s64, s32, s16, s8), _ = unet_features(unet, latent, context)
    x1 = conv(F.relu(gn(conv(s8, r, "encoder.layer1.0", stride=2, padding=1), r, "encoder.layer1.1")), r,
              "encoder.layer1.3", stride=2, padding=1)
    x2 = conv(s16, r, "encoder.layer2.0", stride=2, padding=1)
    x = torch.cat([x1, x2, torch.cat([s32, F.interpolate(s64, scale_factor=2)], dim=1)], dim=1)
    x = F.relu(gn(conv(x, r, "encoder.out_layer.0"), r, "encoder.out_layer.1"))
    x = x[:, :, : math.ceil(h / 32), : math.ceil(w / 32)]  # 16 -> 15 for 480 padded to 512
    return depth_decoder(x, r, upsample=True, max_depth=10.0)[..., :h, :w]


def mp_upsample(x, r, name, times):
    for j in range(times):
        x = F.conv_transpose2d(x, r[f"{name}.deconv_layers.{3 * j}.weight"], stride=2, padding=1)
        x = F.relu(bn(x, r, f"{name}.deconv_layers.{3 * j + 1}"))
    return F.relu(bn(conv(x, r, f"{name}.conv_layers.0", padding=1), r, f"{name}.conv_layers.1"))


def mp_depth_reference(r, unet, vae, window, resize_scale=1, max_depth=10.0):
    """Meta-Prompts depth of one window [1, 3, h, w] in [0, 1] -> [1, 1, h, w] metres."""
    h, w = window.shape[-2:]
    x = window * 2 - 1
    x = F.interpolate(x, size=((h // 64 + resize_scale) * 64, (w // 64 + resize_scale) * 64), mode="bilinear",
                      align_corners=False)
    latent = vae.quant_conv(vae.encoder(x))[:, :4]
    u = "encoder.unet.unet.diffusion_model.out"
    for i in (1, 2, 3):
        if i > 1:  # the UNet's own output head maps the previous step's output to a latent
            latent = F.conv2d(F.silu(F.group_norm(latent, GROUPS, r[u + ".0.weight"], r[u + ".0.bias"], eps=1e-5)),
                              r[u + ".2.weight"], r[u + ".2.bias"], padding=1)
        a = f"encoder.text_adapter{i}.fc"
        prompts = F.linear(F.gelu(F.linear(r[f"encoder.meta_prompts{i}"], r[a + ".0.weight"], r[a + ".0.bias"])),
                           r[a + ".2.weight"], r[a + ".2.bias"])[None]  # no residual, no gamma
        feats, _ = unet_features(unet, latent, prompts, emb_override=r[f"encoder.t{i}"])
        latent = feats[3]
    s64, s32, s16, s8 = feats
    x = torch.cat([F.relu(gn(conv(s8, r, "encoder.layer1.0", padding=1), r, "encoder.layer1.1")),
                   mp_upsample(s16, r, "encoder.layer2", 1), mp_upsample(s32, r, "encoder.layer3", 2),
                   mp_upsample(s64, r, "encoder.layer4", 3)], dim=1)
    x = F.relu(gn(conv(x, r, "encoder.out_layer.0", padding=1), r, "encoder.out_layer.1"))
    x = torch.einsum("bchw,bnc->bnhw", x, prompts)
    x = F.interpolate(x, size=(h // 8, w // 8), mode="bilinear", align_corners=False)
    return depth_decoder(x, r, upsample=False, max_depth=max_depth)


def windows_with_flips(predict, image, size, starts):
    """Mean over the windows (at x in ``starts``) of mean(pred, unflip(pred(flip)))."""
    out = torch.zeros(1, 1, *image.shape[-2:])
    count = torch.zeros_like(out)
    for x0 in starts:
        win = image[..., x0:x0 + size]
        pred = 0.5 * (predict(win) + predict(win.flip(-1)).flip(-1))
        out[..., x0:x0 + size] += pred
        count[..., x0:x0 + size] += 1
    return out / count


# ---- tests ----------------------------------------------------------------------------------------
def test_vpd_depth_release_converts_loads_and_reproduces_the_reference():
    release = release_checkpoint("vpd_depth")
    assert detect_release_format(release) == "vpd_depth"
    # the NYUv2 protocol scaled down: 96 x 128 image, two 96 windows at x = 0 and 32, each + flip
    cfg = scaled_config("vpd_nyu_depth.yaml", "MODEL.VPD.TEST.CROP_SIZE", [96, 96], "MODEL.VPD.TEST.STRIDE", [96, 32])
    model, converted, _ = converted_model(cfg, "vpd_depth", release)
    vae = model.backbone.feature_extractor.vae.module
    assert torch.equal(vae.encoder.conv_in.weight, release["encoder.encoder_vq.encoder.conv_in.weight"])

    torch.manual_seed(2)
    image = torch.randint(0, 256, (3, 96, 128)).float()
    with torch.no_grad():
        ours = model([{"image": image, "scene": "kitchen"}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        scene = list(cfg.MODEL.VPD.PROMPT.SCENE_CLASSES).index("kitchen")
        ref = windows_with_flips(lambda w: vpd_depth_reference(release, unet, vae, w, scene),
                                 image[None] / 255.0, 96, [0, 32])[0, 0]
    assert ours.shape == (96, 128)
    assert (ref - ref.mean()).abs().max() > 1e-3  # not a constant map
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_mp_depth_release_converts_loads_and_reproduces_the_reference():
    release = release_checkpoint("mp_depth")
    assert detect_release_format(release) == "mp_depth"
    cfg = scaled_config("metaprompts_nyu_depth.yaml", "MODEL.VPD.TEST.CROP_SIZE", [96, 96],
                        "MODEL.VPD.TEST.STRIDE", [96, 32])
    model, _, _ = converted_model(cfg, "mp_depth", release)
    torch.manual_seed(3)
    image = torch.randint(0, 256, (3, 96, 128)).float()
    with torch.no_grad():
        ours = model([{"image": image}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        ref = windows_with_flips(lambda w: mp_depth_reference(release, unet, vae, w), image[None] / 255.0, 96,
                                 [0, 32])[0, 0]
    assert ours.shape == (96, 128)
    assert (ref - ref.mean()).abs().max() > 1e-3
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_vpd_depth_scene_changes_the_prediction_and_unknown_scene_is_an_error():
    release = release_checkpoint("vpd_depth")
    model, _, _ = converted_model(scaled_config("vpd_nyu_depth.yaml", "MODEL.VPD.TEST.FLIP", False,
                                                "MODEL.VPD.TEST.CROP_SIZE", [], "MODEL.VPD.TEST.STRIDE", []),
                                  "vpd_depth", release)
    image = torch.randint(0, 256, (3, 64, 64)).float()
    with torch.no_grad():
        a = model([{"image": image, "scene": "kitchen"}])[0]["depth"]
        b = model([{"image": image, "scene": "bathroom"}])[0]["depth"]
        assert not torch.allclose(a, b)
        with pytest.raises(ValueError, match="unknown scene class 'garage'"):
            model([{"image": image, "scene": "garage"}])
        with pytest.raises(ValueError, match="needs prompt input 'scenes'"):
            model([{"image": image}])


@pytest.mark.parametrize("fmt", ["vpd_depth", "mp_depth", "vpd_seg", "vpd_refer"])
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
    with pytest.raises(ValueError, match="weights_only=True"):
        load_release_checkpoint(str(path))
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import convert_vpd_checkpoint
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit, match="weights_only=True"):
        convert_vpd_checkpoint.main([str(path), str(tmp_path / "out.pth")])
    assert not marker.exists()
    assert not (tmp_path / "out.pth").exists()


def test_tool_converts_a_release_file_and_back(tmp_path):
    release = release_checkpoint("vpd_depth")
    src = tmp_path / "vpd_depth.pth"
    torch.save({"model": {"module." + k: v for k, v in release.items()}}, src)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import convert_vpd_checkpoint
    finally:
        sys.path.pop(0)
    convert_vpd_checkpoint.main([str(src), str(tmp_path / "ours.pth"), "--no-release-shapes"])
    ours = torch.load(tmp_path / "ours.pth", weights_only=True)
    assert ours["release_format"] == "vpd_depth"
    assert "depth_head.layer2.weight" in ours["model"]
    convert_vpd_checkpoint.main([str(tmp_path / "ours.pth"), str(tmp_path / "back.pth"), "--to-release"])
    back = torch.load(tmp_path / "back.pth", weights_only=True)["model"]
    assert set(back) == set(release) and all(torch.equal(back[k], v) for k, v in release.items())


def test_shift_windows_follow_the_reference_protocol():
    from odise_ext.modeling.vpd.sliding_window import shift_windows, sliding_window_inference

    # KITTI: 16 windows of 352 over 1216 columns at x = i * 57; NYUv2: 2 of 480 over 640 at 0, 160
    boxes = shift_windows(352, 1216, 16)
    assert [b[2] for b in boxes] == [57 * i for i in range(16)] and boxes[-1][3] == 1207
    assert [b[2] for b in shift_windows(480, 640, 2)] == [0, 160]
    image = torch.arange(2 * 10, dtype=torch.float32).view(1, 2, 10)
    out = sliding_window_inference(lambda w: w * 2, image, boxes=shift_windows(2, 10, 4))  # x = 0, 2, 4, 6
    assert torch.equal(out[..., :8], image[..., :8] * 2)
    assert torch.equal(out[..., 8:], (image[..., 7:8] * 2).expand(1, 2, 2))  # uncovered: last covered column


def test_mp_kitti_depth_uses_shift_windows_and_resize():
    release = release_checkpoint("mp_depth")
    cfg = scaled_config("metaprompts_kitti_depth.yaml", "MODEL.VPD.TEST.SHIFT_WINDOWS", 3)
    model, _, _ = converted_model(cfg, "mp_depth", release)
    torch.manual_seed(4)
    image = torch.randint(0, 256, (3, 48, 112)).float()
    with torch.no_grad():
        ours = model([{"image": image}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        # 48 // 64 + 2 = 2 -> 128 x 128 UNet input; windows at x = 0, 32, 64
        ref = windows_with_flips(lambda w: mp_depth_reference(release, unet, vae, w, resize_scale=2, max_depth=80.0),
                                 image[None] / 255.0, 48, [0, 32, 64])[0, 0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "fmt,config,opts",
    [
        ("vpd_seg", "vpd_ade20k_semseg.yaml", ["MODEL.SEM_SEG_HEAD.NORM", "BN"]),
        ("vpd_refer", "vpd_refcoco.yaml", ["MODEL.VPD.REFER.LANG_GATE", False, "MODEL.VPD.PROMPT.SENTENCE_LENGTH", 77]),
    ],
)
def test_seg_and_refer_release_layouts_map_onto_our_models(fmt, config, opts):
    """Key mapping only (the architectures are not yet the public ones): every released key has
    one of ours, of the same rank, and back."""
    torch.manual_seed(0)
    model = build_model(scaled_config(config, *opts))
    prefix = {"vpd_seg": "backbone.bottom_up.feature_extractor.", "vpd_refer": "backbone.feature_extractor."}[fmt]
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    vae = model.get_submodule(prefix + "vae.module")
    ours.update({k: v for k, v in vae.state_dict(prefix=prefix + "vae.module.").items() if ".decoder." not in k})
    shapes = release_key_shapes(fmt)
    dropped = {k: torch.zeros(tiny_shape(s)) for k, s in shapes.items() if k.startswith("sd_model.") or k == "class_embeddings"}
    release = convert_ours_to_release(ours, fmt, dropped)
    assert list(release) == list(shapes)
    assert all(release[k].dim() == len(s) for k, s in shapes.items())
    back, kept = convert_release_to_ours(release, fmt, check_shapes=False)
    assert set(kept) == set(dropped)
    assert check_against_model(back, model, fmt) == []


@pytest.mark.parametrize(
    "fmt,config",
    [("vpd_depth", "vpd_nyu_depth.yaml"), ("mp_depth", "metaprompts_nyu_depth.yaml"),
     ("mp_depth", "metaprompts_kitti_depth.yaml")],
)
def test_full_size_release_shapes_fit_the_real_configs(fmt, config):
    """Every released key and full-size shape fits the real config's model (built on the meta
    device: no memory, no weights)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import convert_vpd_checkpoint
    finally:
        sys.path.pop(0)
    model = convert_vpd_checkpoint._model_of(os.path.join(ROOT, "configs", "vpd", config))
    release = {k: torch.empty(s, device="meta") for k, s in release_key_shapes(fmt).items()}
    converted, _ = convert_release_to_ours(release, fmt, check_shapes=True)
    assert check_against_model(converted, model, fmt) == []
