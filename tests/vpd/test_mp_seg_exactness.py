"""Meta-Prompts segmentation checkpoints (formats ``mp_seg_ade20k`` / ``mp_seg_cityscapes`` /
``mp_seg_cityscapes_extra``, key lists DERIVED from the public code) convert, load strictly and
reproduce the public model.

A checkpoint in the derived released layout (scaled-down shapes, random values) is converted and
loaded into the model of the real config (SD scaled down alike); the model's logits, with the
config's sliding-window test, are compared with an independent forward written here from the
public definition (fudan-zvg/meta-prompts ``MetaPromptsSeg.extract_feat`` / ``encode_decode`` /
``slide_inference``, mmseg's ``UPerHead``, ``FCNHead``, ``PPM`` and ``ConvModule``), fp32,
<= 1e-5.
"""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odise_ext.checkpoint import (
    check_against_model,
    convert_ours_to_release,
    convert_release_to_ours,
    detect_release_format,
    release_key_shapes,
)
from vpd_release import (
    GROUPS,
    ROOT,
    bn,
    converted_model,
    diffusers_parts,
    release_checkpoint,
    scaled_config,
    slide_inference,
    tool,
    unet_features,
)

UNET = "unet.unet.diffusion_model."
# Scaled-down sizes (vpd_release.tiny_shape divides dims >= 128 by 8): 150 prompts / ADE20K
# classes -> 18, head channels 512 -> 64.
TINY = ["MODEL.META_PROMPTS.NUM_PROMPTS", 18, "MODEL.UPER_HEAD.CHANNELS", 64, "MODEL.UPER_HEAD.AUX_CHANNELS", 64]


def _model(fmt, config, *opts):
    release = release_checkpoint(fmt)
    cfg = scaled_config(config, *TINY, *opts)
    model, _, dropped = converted_model(cfg, fmt, release)  # every tensor of the model is loaded
    assert set(dropped) == {k for k in release if k.startswith("sd_model.")}
    return model, cfg, release


# ---- independent forward (the public definition) ---------------------------------------------------
def conv_module(x, r, name, padding=0):
    """mmcv ConvModule with a norm: conv (no bias) -> BN -> ReLU."""
    return F.relu(bn(F.conv2d(x, r[name + ".conv.weight"], None, padding=padding), r, name + ".bn"))


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def extract_feat(r, unet, vae, window, steps=3):
    """MetaPromptsSeg.extract_feat: window [1, 3, h, w] in [0, 1] -> 4 maps [1, N, h/4 .. h/32]."""
    latent = vae.quant_conv(vae.encoder(window * 2 - 1))[:, :4]  # posterior mode, no scale
    prompts = r["meta_prompts"][None]  # the context of every step, no adapter
    for i in range(1, steps + 1):
        if i > 1:  # cross_unet_conv_i = the UNet's out head on the previous step's final output
            latent = F.group_norm(latent, GROUPS, r[UNET + "out.0.weight"], r[UNET + "out.0.bias"], eps=1e-5)
            latent = F.conv2d(F.silu(latent), r[UNET + "out.2.weight"], r[UNET + "out.2.bias"], padding=1)
        feats, _ = unet_features(unet, latent, prompts, emb_override=r[f"t{i}"])
        latent = feats[3]
    outs = []
    for i, feat in enumerate(reversed(feats), 1):  # UNetWrapper returns finest first
        x = F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, r[f"upconv{i}.0.weight"], r[f"upconv{i}.0.bias"], padding=1)
        x = F.relu(F.group_norm(x, 16, r[f"upconv{i}.1.weight"], r[f"upconv{i}.1.bias"], eps=1e-5))
        outs.append(torch.einsum("bchw,bnc->bnhw", x, prompts))
    return outs


def uper_head(xs, r, pool_scales=(1, 2, 3, 6)):
    """mmseg UPerHead (align_corners False) -> logits at the finest level."""
    p = "decode_head."
    top = xs[-1]
    psp = [top] + [resize(conv_module(F.adaptive_avg_pool2d(top, s), r, f"{p}psp_modules.{i}.1"), top.shape[-2:])
                   for i, s in enumerate(pool_scales)]
    laterals = [conv_module(x, r, f"{p}lateral_convs.{i}") for i, x in enumerate(xs[:-1])]
    laterals.append(conv_module(torch.cat(psp, 1), r, p + "bottleneck", padding=1))
    for i in range(len(laterals) - 1, 0, -1):
        laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
    outs = [conv_module(x, r, f"{p}fpn_convs.{i}", padding=1) for i, x in enumerate(laterals[:-1])] + [laterals[-1]]
    outs = [outs[0]] + [resize(o, outs[0].shape[-2:]) for o in outs[1:]]
    x = conv_module(torch.cat(outs, 1), r, p + "fpn_bottleneck", padding=1)
    return F.conv2d(x, r[p + "conv_seg.weight"], r[p + "conv_seg.bias"])


def fcn_head(x, r):
    """mmseg FCNHead, one conv3x3, concat_input False (the auxiliary head)."""
    x = conv_module(x, r, "auxiliary_head.convs.0", padding=1)
    return F.conv2d(x, r["auxiliary_head.conv_seg.weight"], r["auxiliary_head.conv_seg.bias"])


# ---- tests ------------------------------------------------------------------------------------------
def test_mp_seg_ade20k_release_converts_loads_and_reproduces_the_reference():
    model, cfg, r = _model("mp_seg_ade20k", "metaprompts_ade20k_semseg.yaml", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 18,
                           "TEST.DENSE.CROP_SIZE", [64, 64], "TEST.DENSE.STRIDE", [48, 48])
    torch.manual_seed(2)
    image = torch.randint(0, 256, (3, 96, 160)).float()  # 2 x 3 windows, the last ones shifted back
    unet, vae = diffusers_parts(r, "", cfg)
    with torch.no_grad():
        ours = model([{"image": image, "height": 120, "width": 200}])[0]["sem_seg"]

        def encode_decode(window):
            return resize(uper_head(extract_feat(r, unet, vae, window), r), window.shape[-2:])

        ref = slide_inference(encode_decode, image[None] / 255.0, (64, 64), (48, 48), (120, 200))[0]
        # the features and the auxiliary head (training only) of one window, too
        window = image[None, :, :64, :64]
        feats = model.backbone(window / 255.0)
        ref_feats = extract_feat(r, unet, vae, window / 255.0)
        for name, ref_feat in zip(["res2", "res3", "res4", "res5"], ref_feats):
            torch.testing.assert_close(feats[name], ref_feat, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.sem_seg_head.aux_head(feats["res4"]), fcn_head(ref_feats[2], r),
                                   rtol=1e-5, atol=1e-5)
    assert ours.shape == (18, 120, 200)
    assert (ref - ref.mean()).abs().max() > 1e-3  # not a constant map
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt,config,steps", [
    ("mp_seg_cityscapes", "metaprompts_cityscapes_semseg.yaml", 3),
    ("mp_seg_cityscapes_extra", "metaprompts_cityscapes_extra_semseg.yaml", 1),  # Mapillary-pretrained
])
def test_mp_seg_cityscapes_release_reproduces_the_reference(fmt, config, steps):
    model, cfg, r = _model(fmt, config, "TEST.DENSE.CROP_SIZE", [128, 128], "TEST.DENSE.STRIDE", [64, 64])
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 19 and cfg.MODEL.UPER_HEAD.DROPOUT == 0.1
    torch.manual_seed(3)
    # 2 windows at x = 0, 64; 128 windows give a 4 x 4 coarsest level, on which every pool scale acts
    image = torch.randint(0, 256, (3, 128, 192)).float()
    unet, vae = diffusers_parts(r, "", cfg)
    with torch.no_grad():
        ours = model([{"image": image}])[0]["sem_seg"]

        def encode_decode(window):
            return resize(uper_head(extract_feat(r, unet, vae, window, steps), r), window.shape[-2:])

        ref = slide_inference(encode_decode, image[None] / 255.0, (128, 128), (64, 64), (128, 192))[0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_derived_key_lists_are_the_derivation_and_fit_the_real_configs():
    """The shipped key lists are what tools/derive_mp_seg_release_keys.py derives; every key and
    full-size shape fits the real config's model (meta device); ADE20K and Cityscapes files are
    told apart by their classifier shapes, anything else is an error."""
    convert_vpd_checkpoint = tool("convert_vpd_checkpoint")
    derive_mp_seg_release_keys = tool("derive_mp_seg_release_keys")
    for fmt, classes, steps, config in [("mp_seg_ade20k", 150, 3, "metaprompts_ade20k_semseg.yaml"),
                                        ("mp_seg_cityscapes", 19, 3, "metaprompts_cityscapes_semseg.yaml"),
                                        ("mp_seg_cityscapes_extra", 19, 1, "metaprompts_cityscapes_extra_semseg.yaml")]:
        derived = derive_mp_seg_release_keys.derive(classes, steps)
        assert list(release_key_shapes(fmt).items()) == [(k, s) for k, s, _ in derived]
        release = {k: torch.empty(s, device="meta") for k, s in release_key_shapes(fmt).items()}
        assert detect_release_format(release) == fmt
        converted, dropped = convert_release_to_ours(release, fmt, check_shapes=True)
        model = convert_vpd_checkpoint._model_of(os.path.join(ROOT, "configs", "vpd", config))
        assert check_against_model(converted, model, fmt) == []
    with pytest.raises(ValueError, match="tell none of them apart"):
        detect_release_format(release_checkpoint("mp_seg_ade20k"))  # scaled down: 18 classes


def test_tool_round_trip_writes_the_mmcv_container(tmp_path):
    fmt = "mp_seg_cityscapes"
    release = release_checkpoint(fmt)
    ours, dropped = convert_release_to_ours(release, fmt, check_shapes=False)
    back = convert_ours_to_release(ours, fmt, dropped)
    assert list(back) == list(release_key_shapes(fmt)) and all(torch.equal(back[k], v) for k, v in release.items())
    convert_vpd_checkpoint = tool("convert_vpd_checkpoint")
    src = tmp_path / "mp_cityscapes.pth"
    # mmcv's runner keeps the best score as a numpy float: allowed, it runs no code when read
    meta = {"iter": 80000, "CLASSES": ("road", "sidewalk"), "hook_msgs": {"best_score": np.float64(0.8438)}}
    torch.save({"meta": meta, "state_dict": release}, src)
    convert_vpd_checkpoint.main([str(src), str(tmp_path / "ours.pth"), "--no-release-shapes", "--format", fmt])
    ours = torch.load(tmp_path / "ours.pth", weights_only=True)
    assert ours["release_format"] == fmt and "sem_seg_head.ppm.stages.0.1.norm.running_var" in ours["model"]
    convert_vpd_checkpoint.main([str(tmp_path / "ours.pth"), str(tmp_path / "back.pth"), "--to-release"])
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert list(back) == ["state_dict"]
    assert all(torch.equal(back["state_dict"][k], v) for k, v in release.items())
