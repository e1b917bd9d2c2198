"""The released VPD ADE20K segmentation checkpoint reproduces the public model's logits.

A checkpoint in the released layout (``vpd_seg``: mmcv ``state_dict``; scaled-down shapes, random
values, ``tests/vpd/vpd_release.py``) is converted and loaded into the model of
``configs/vpd/vpd_ade20k_semseg.yaml`` (SD and the head scaled down alike: 18 classes instead of
150, FPN width 32 instead of 256, 128 px windows with stride 85 for 512 / 341). The model's logits
are compared with an independent forward written here and in ``vpd_release.py`` from the public
definition (wl-zhao/VPD ``segmentation/models/vpd_seg.py``, ``vpd/models.py``; mmseg's FPN, FPNHead and ``slide_inference``),
fp32: <= 1e-5 when rounded as ours (input normalisation, windows batched), within 1e-5 of the logit
range as written. Also: mmseg's test pipeline (``SemSegSlideTestMapper``) and FPNHead training loss.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from odise_ext.checkpoint import detect_release_format
from vpd_release import (
    bn,
    conv,
    converted_model,
    diffusers_parts,
    hooked_unet,
    mean_attention,
    release_checkpoint,
    scaled_config,
    slide_inference,
    unet_features,
)

NUM_CLASSES, WIDTH, CROP, STRIDE = 18, 32, 128, 85  # tiny_shape of 150 / 256; 512 / 341 scaled by 1/4


def seg_config(*opts):
    names = [f"class {i}" for i in range(NUM_CLASSES)]
    return scaled_config(
        "vpd_ade20k_semseg.yaml",
        "MODEL.FPN.OUT_CHANNELS", WIDTH, "MODEL.SEM_SEG_HEAD.CONVS_DIM", WIDTH,
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", NUM_CLASSES, "MODEL.VPD.PROMPT.CLASS_NAMES", names,
        "TEST.DENSE.CROP_SIZE", [CROP, CROP], "TEST.DENSE.STRIDE", [STRIDE, STRIDE], *opts,
    )


# ---- the public definition ------------------------------------------------------------------------
def unet_wrapper(unet, store, latent, context, base_size):
    """VPD's ``UNetWrapper`` (use_attn, attn_selector 'up_cross+down_cross', max_attn_size None):
    outputs of output blocks 11 / 7 / 4 / 1, the mean attention of the base/16 and base/32 maps
    appended to blocks 7 and 4."""
    store.clear()
    (h1, h4, h7, h11), _ = unet_features(unet, latent, context)
    max_size = base_size // 8 // 2  # AttentionStore: keep maps with N <= max_size^2
    by_size = mean_attention(store, max_size, places=("down", "up"))
    assert base_size // 8 not in by_size
    attn16 = by_size[base_size // 32]
    attn32 = by_size[base_size // 16]
    return [h11, torch.cat([h7, attn32], 1), torch.cat([h4, attn16], 1), h1]


def mmseg_fpn(x, r):
    lat = [conv(f, r, f"neck.lateral_convs.{i}.conv") for i, f in enumerate(x)]
    for i in range(len(lat) - 1, 0, -1):
        lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
    return [conv(l, r, f"neck.fpn_convs.{i}.conv", padding=1) for i, l in enumerate(lat)]


def mmseg_fpn_head(x, r):
    """FPNHead, feature strides 8/16/32/64 (the config's 4/8/16/32, same ratios), eval mode."""
    out = None
    for i, f in enumerate(x):
        for k in range(max(1, i)):
            name = f"decode_head.scale_heads.{i}.{2 * k}"
            f = F.relu(bn(conv(f, r, name + ".conv", padding=1), r, name + ".bn"))
            if i > 0:
                f = F.interpolate(f, size=(2 * f.shape[2], 2 * f.shape[3]), mode="bilinear", align_corners=False)
        out = f if out is None else out + F.interpolate(f, size=out.shape[2:], mode="bilinear", align_corners=False)
    return conv(out, r, "decode_head.conv_seg")  # dropout: identity in eval


def mmseg_normalize(crop):
    return (crop - 127.5) / 127.5  # img_norm_cfg: mean = std = 127.5 (to_rgb: the input is RGB)


def vpd_seg_encode_decode(r, unet, vae, store, crop, normalize=mmseg_normalize):
    """``VPDSeg.encode_decode`` of one crop [1, 3, h, w] (RGB 0-255) -> [1, K, h, w] logits."""
    x = normalize(crop)
    latent = vae.quant_conv(vae.encoder(x))[:, :4]  # posterior mode, no latent scale
    c = r["class_embeddings"]
    mlp = F.linear(F.gelu(F.linear(c, r["text_adapter.fc.0.weight"], r["text_adapter.fc.0.bias"])),
                   r["text_adapter.fc.2.weight"], r["text_adapter.fc.2.bias"])
    context = (c + r["gamma"] * mlp)[None].expand(crop.shape[0], -1, -1)
    feats = unet_wrapper(unet, store, latent, context, base_size=crop.shape[-1])
    logits = mmseg_fpn_head(mmseg_fpn(feats, r), r)
    return F.interpolate(logits, size=crop.shape[2:], mode="bilinear", align_corners=False)


# ---- tests ---------------------------------------------------------------------------------------
def test_vpd_seg_release_converts_loads_and_reproduces_the_reference():
    release = release_checkpoint("vpd_seg")
    assert detect_release_format(release) == "vpd_seg"
    cfg = seg_config()
    model, converted, dropped = converted_model(cfg, "vpd_seg", release)
    assert set(dropped) == {k for k in release if k.startswith("sd_model.")}
    prompt = model.backbone.bottom_up.feature_extractor.prompt
    assert torch.equal(prompt.class_embeddings, release["class_embeddings"])  # the stored ones, not CLIP's
    assert type(model.sem_seg_head).__name__ == "FPNHead"
    assert isinstance(model.sem_seg_head.p4[0].norm, torch.nn.SyncBatchNorm)

    torch.manual_seed(2)
    image = torch.randint(0, 256, (3, CROP, 192)).float()  # two windows, at x = 0 and 64
    ori = (100, 150)  # the prediction is resized back to the original image size
    with torch.no_grad():
        ours = model([{"image": image, "height": ori[0], "width": ori[1]}])[0]["sem_seg"]
        unet, vae = diffusers_parts(release, "", cfg)
        store = hooked_unet(unet)

        def reference(normalize, one_batch):
            return slide_inference(lambda w: vpd_seg_encode_decode(release, unet, vae, store, w, normalize),
                                   image[None], CROP, STRIDE, ori, one_batch)[0]

        ref = reference(mmseg_normalize, one_batch=False)
        # The same computation rounded as ours: the input as (x / 255) * 2 - 1, which differs from
        # (x - 127.5) / 127.5 by <= 6e-8, and both windows in one batch. The random tiny UNet
        # amplifies such rounding to ~1e-6 of its features' scale (logits up to ~60 here).
        ref_ours_rounding = reference(lambda crop: crop / 255.0 * 2 - 1, one_batch=True)
    assert ours.shape == (NUM_CLASSES, *ori)
    assert (ref.argmax(0) != ref[0].argmax()).any()  # not one class everywhere
    torch.testing.assert_close(ours, ref_ours_rounding, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_vpd_seg_test_mapper_is_mmsegs_pipeline(tmp_path):
    from odise_ext.dense.mappers import SemSegSlideTestMapper
    from odise_ext.dense.mappers.semseg import mmseg_rescale_size

    # mmcv rescale with img_scale (2048, 512): scale = min(2048 / long, 512 / short), rounded half up
    assert mmseg_rescale_size(480, 640, 512, 2048) == (512, 683)
    assert mmseg_rescale_size(1024, 2048, 1024, 2048) == (1024, 2048)
    assert mmseg_rescale_size(300, 3000, 512, 2048) == (205, 2048)  # the long side binds
    bgr = np.random.RandomState(0).randint(0, 256, (50, 75, 3)).astype(np.uint8)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, bgr)
    cfg = seg_config("INPUT.MIN_SIZE_TEST", 32, "INPUT.MAX_SIZE_TEST", 64)
    out = SemSegSlideTestMapper(cfg, False)({"file_name": path, "sem_seg_file_name": "x.png"})
    # 50 x 75 -> scale min(64 / 75, 32 / 50) = 0.64 -> 32 x 48, OpenCV bilinear, RGB
    expected = cv2.resize(bgr, (48, 32), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 32, 48)
    assert torch.equal(out["image"], torch.as_tensor(expected.transpose(2, 0, 1).copy()))
    assert (out["height"], out["width"]) == (50, 75) and "sem_seg_file_name" not in out


def test_vpd_fpn_head_trains_as_mmsegs_fpn_head():
    """Training: Dropout2d(0.1) before the classifier, batch-statistics BN, the logits resized to
    the labels, cross-entropy summed over labelled pixels / all pixels (mmseg's default)."""
    from detectron2.layers import ShapeSpec

    from odise_ext.dense.heads import FPNHead

    shapes = {f"p{k}": ShapeSpec(channels=6, stride=2 ** k) for k in (3, 4, 5, 6)}
    torch.manual_seed(0)
    head = FPNHead(shapes, num_classes=5, conv_dims=8, common_stride=8, norm="BN", ignore_value=255,
                      dropout=0.1).train()
    assert float(head.predictor.weight.detach().std()) < 0.02 and not head.predictor.bias.detach().any()  # N(0, 0.01), 0
    feats = {f"p{k}": torch.randn(2, 6, 128 // 2 ** k, 128 // 2 ** k) for k in (3, 4, 5, 6)}
    targets = torch.randint(0, 5, (2, 128, 128))
    targets[:, :40] = 255
    r = {k: v for k, v in head.state_dict().items()}

    def reference():
        x = None
        for i, k in enumerate((3, 4, 5, 6)):
            f = feats[f"p{k}"]
            for j in range(max(1, i)):
                n = f"p{k}.{2 * j}"
                f = F.conv2d(f, r[n + ".weight"], padding=1)
                f = F.relu(F.batch_norm(f, None, None, r[n + ".norm.weight"], r[n + ".norm.bias"], training=True))
                if i > 0:
                    f = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False)
            x = f if x is None else x + f
        x = F.conv2d(F.dropout2d(x, 0.1, training=True), r["predictor.weight"], r["predictor.bias"])
        x = F.interpolate(x, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(x, targets, reduction="none", ignore_index=255)
        return loss.mean()  # mmseg's avg_non_ignore=False: ignored pixels count in the mean

    torch.manual_seed(5)
    _, ours = head(feats, targets)
    torch.manual_seed(5)  # the same dropout mask
    torch.testing.assert_close(ours["loss_sem_seg"], reference(), rtol=1e-5, atol=1e-6)
