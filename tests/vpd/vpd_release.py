"""Helpers of the released-checkpoint tests (test_vpd_release_*.py).

A checkpoint in the released key layout is written here: every key of the released key list
(``odise_ext/{vpd,metaprompts}/release/keys/*.tsv.gz``, copied from the released files) with a scaled-down
shape (every dimension >= 128 divided by 8, e.g. SD's 320/640/1280 UNet widths become 40/80/160,
CLIP's 768 becomes 96) and random values. The independent forwards below are written from the
definition of the public models: diffusers' UNet / VAE used directly (loaded with diffusers' own
ldm converter), every other layer with torch.nn.functional on the released tensors.
"""
import importlib
import math
import os
import sys

import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

import odise_ext  # noqa: F401  (registers models)
from odise_ext.config import get_odise_cfg
from odise_ext.checkpoint import check_against_model, convert_release_to_ours, release_key_shapes
from odise_ext.checkpoint import release_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUPS = 8  # GroupNorm groups of the scaled-down model (SD: 32, VPD necks: 16)


def tool(name):
    """The script ``tools/<name>.py``, imported as a module."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def tiny_shape(shape):
    return tuple(d // 8 if d >= 128 else d for d in shape)


def release_checkpoint(fmt, seed=0, scale=None):
    """A random state dict with every released key of ``fmt``, scaled-down shapes.
    ``scale(key, shape)``: the scaled shape of a key (default: :func:`tiny_shape`)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in release_key_shapes(fmt).items():
        shape = scale(key, shape) if scale is not None else tiny_shape(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            out[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    for dup, orig in release_format(fmt).duplicates.items():  # one tensor stored under two names
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
        "MODEL.DIFFUSION.GRADIENT_CHECKPOINTING", False,
        "MODEL.DEPTH_HEAD.GN_GROUPS", GROUPS,
        "MODEL.DEPTH_HEAD.HIDDEN_DIM", 24,
        "MODEL.DEPTH_HEAD.FUSE_DIM", 192,
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
        "vpd_seg": (),
        "vpd_refer": (),
        "mp_seg_ade20k": (),
        "mp_seg_cityscapes": (),
        "mp_seg_cityscapes_extra": (),
    }[fmt]
    prefix = "backbone.bottom_up.feature_extractor." if fmt == "vpd_seg" else "backbone.feature_extractor."
    assert all(
        k.endswith("_extra_state") or k.startswith(tuple(prefix + u for u in unused))
        for k in incompatible.missing_keys
    ), incompatible.missing_keys
    assert bool(incompatible.missing_keys) == bool(unused)  # the others: every key of ours is loaded
    return model, converted, dropped


# ---- independent forward (the public model's definition) ----------------------------------------
def diffusers_parts(release, prefix, cfg):
    """diffusers UNet / VAE with the released (ldm-named) weights, via diffusers' own converter."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from odise_ext.diffusion.sd_loading import build_unet, build_vae

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


class StoreCrossAttention:
    """ldm ``CrossAttention.forward`` as VPD's ``register_attention_control`` rewrites it: softmax
    attention over the tokens per head, the head-averaged probabilities [B, N, L] handed to the
    attention store as (place, probs)."""

    def __init__(self, store, place):
        self.store, self.place = store, place

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        b, n, _ = hidden_states.shape
        h = attn.heads

        def heads(t):  # 'b n (h d) -> (b h) n d'
            return t.reshape(b, t.shape[1], h, -1).permute(0, 2, 1, 3).reshape(b * h, t.shape[1], -1)

        q = heads(attn.to_q(hidden_states))
        k, v = heads(attn.to_k(encoder_hidden_states)), heads(attn.to_v(encoder_hidden_states))
        probs = torch.einsum("bid,bjd->bij", q, k).mul(attn.scale).softmax(dim=-1)
        self.store.append((self.place, probs.reshape(b, h, n, -1).mean(dim=1)))
        out = torch.einsum("bij,bjd->bid", probs, v).reshape(b, h, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1)
        return attn.to_out[1](attn.to_out[0](out))


def hooked_unet(unet, places=("down", "mid", "up")):
    """The cross-attention layers (``attn2``) of the UNet's down / mid / up blocks named in ``places``
    run :class:`StoreCrossAttention` and record into the returned list; the others are left as
    they are."""
    store = []
    for name, module in unet.named_modules():
        place = name.split("_")[0]  # down_blocks / mid_block / up_blocks
        if name.endswith(".attn2") and place in places:
            module.set_processor(StoreCrossAttention(store, place))
    return store


def mean_attention(store, max_side, places):
    """VPD's ``UNetWrapper.process_attn``: the maps recorded at ``places`` with at most max_side^2
    pixels, averaged per resolution (summed in the order of ``places``, then of the store).
    Returns {side: [B, L, side, side]}, as einops' ``'b (h w) c -> b c h w'`` view (channels-last
    memory, which the convolutions after it keep: their rounding depends on it)."""
    maps = {}
    for place in places:
        for p, m in store:
            side = int(math.sqrt(m.shape[1]))
            if p == place and m.shape[1] <= max_side ** 2:
                maps.setdefault(side, []).append(m.reshape(m.shape[0], side, side, -1).permute(0, 3, 1, 2))
    return {side: torch.stack(ms).mean(dim=0) for side, ms in maps.items()}


def slide_inference(encode_decode, img, crop, stride, out_size, one_batch=False):
    """mmseg ``slide_inference`` with rescale: [1, 3, H, W] -> [1, K, *out_size]; ``crop`` /
    ``stride``: an int or (h, w). The windows run one at a time; ``one_batch`` runs them as one
    batch (the same numbers up to the batch-size-dependent rounding of the CPU kernels)."""
    (ch, cw), (sh, sw) = ((v, v) if isinstance(v, int) else tuple(v) for v in (crop, stride))
    _, _, h_img, w_img = img.shape
    h_grids = max(h_img - ch + sh - 1, 0) // sh + 1
    w_grids = max(w_img - cw + sw - 1, 0) // sw + 1
    boxes = []
    for hi in range(h_grids):
        for wi in range(w_grids):
            y2, x2 = min(hi * sh + ch, h_img), min(wi * sw + cw, w_img)
            boxes.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
    crops = [img[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in boxes]
    logits = encode_decode(torch.cat(crops)).split(1) if one_batch else [encode_decode(c) for c in crops]
    preds, count = 0, torch.zeros(1, 1, h_img, w_img)
    for logit, (y1, y2, x1, x2) in zip(logits, boxes):
        preds = preds + F.pad(logit, (x1, w_img - x2, y1, h_img - y2))
        count[:, :, y1:y2, x1:x2] += 1
    return F.interpolate(preds / count, size=out_size, mode="bilinear", align_corners=False)


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
