"""The released VPD RefCOCO checkpoint reproduces the public model (wl-zhao/VPD ``refer/``).

A checkpoint in the released layout (``vpd_refer``: every key of the released key list, SD and the
decoder scaled down by 8, the 77 attention channels kept, random values) is converted and loaded
into ``configs/vpd/vpd_refcoco.yaml`` with no override but the scale-down (SD widths, decoder
width 80, 128 x 128 input), and the 2-class
logits and the final mask are compared with an independent forward of ``VPDRefer`` written here
from the public definition (fp32, <= 1e-5). The test-time data path (resize to 512 x 512, mask by
nearest neighbour) and the sentence tokenisation are compared with the reference's too.
"""
import gzip
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

from odise_ext.checkpoint import check_against_model, convert_release_to_ours, detect_release_format
from odise_ext.checkpoint import release_key_shapes
from vpd_release import (
    ROOT,
    bn,
    converted_model,
    diffusers_parts,
    hooked_unet,
    mean_attention,
    release_checkpoint,
    scaled_config,
    tiny_shape,
    tool,
    unet_features,
)

TOKENS = 77  # VPD's --token_length: the attention-map channels, which do not scale with the model
SIZE = 128  # tiny input (the real one is 512): latent 16 x 16, attention maps at 8 x 8 and 4 x 4


def refer_release(seed=0):
    """Random state dict with every released ``vpd_refer`` key, scaled-down shapes."""

    def scale(key, shape):
        if key in ("classifier.conv1_4.weight", "classifier.conv1_3.weight"):
            # input = UNet features (scaled) + the 77 attention maps (not scaled)
            return (shape[0] // 8, (shape[1] - TOKENS) // 8 + TOKENS) + shape[2:]
        return tiny_shape(shape)

    return release_checkpoint("vpd_refer", seed, scale)


def refer_config(*opts):
    return scaled_config("vpd_refcoco.yaml", "MODEL.REFER_HEAD.HIDDEN_DIM", 80, "DATA.REFER.SIZE",
                         [SIZE, SIZE], *opts)


def reference_tokenizer():
    """transformers' ``CLIPTokenizer`` (what VPD's dataset uses) on CLIP's 49408-token BPE
    vocabulary (that of the openai/clip-vit-large-patch14 files), built from the copy open_clip ships."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = [tuple(m.split()) for m in gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)  # pads with <|endoftext|>


def reference_ids(sentences):
    """VPD's ``dataset_refer_clip.py``: truncate / pad to 77 tokens."""
    return reference_tokenizer()(sentences, truncation=True, max_length=TOKENS, padding="max_length",
                                 return_tensors="pt")["input_ids"]


# ---- independent forward of VPDRefer -------------------------------------------------------------
def simple_decoding(r, x_c4, x_c3, x_c2, x_c1):
    """VPD's ``SimpleDecoding``: three (upsample if smaller, concat, 2 x conv3x3-BN-ReLU) stages,
    then the 1x1 classifier."""
    x = x_c4
    for level, skip in (("4", x_c3), ("3", x_c2), ("2", x_c1)):
        if x.shape[-2] < skip.shape[-2] or x.shape[-1] < skip.shape[-1]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        x = torch.cat([x, skip], dim=1)
        for j in (1, 2):
            x = F.relu(bn(F.conv2d(x, r[f"classifier.conv{j}_{level}.weight"], padding=1), r, f"classifier.bn{j}_{level}"))
    return F.conv2d(x, r["classifier.conv1_1.weight"], r["classifier.conv1_1.bias"])


def vpd_refer_reference(r, unet, vae, text_encoder, image, ids):
    """``VPDRefer.forward`` of one image [1, 3, H, W] in [0, 1] and its token ids [1, 77] -> logits
    [1, 2, H, W]."""
    x = image * 2 - 1  # ToTensor + Normalize(0.5, 0.5)
    latent = vae.quant_conv(vae.encoder(x))[:, :4]  # posterior mode, no latent scale
    feats = text_encoder(input_ids=ids).last_hidden_state  # test.py: CLIPTextModel, no attention mask
    mlp = F.linear(F.gelu(F.linear(feats, r["text_adapter.fc.0.weight"], r["text_adapter.fc.0.bias"])),
                   r["text_adapter.fc.2.weight"], r["text_adapter.fc.2.bias"])
    context = feats + r["gamma"] * mlp
    store = hooked_unet(unet, places=("down", "up"))  # the mid block's attention runs as diffusers' own
    (s64, s32, s16, s8), _ = unet_features(unet, latent, context)  # t = 1
    # VPD's UNetWrapper.process_attn: the 'up_cross' + 'down_cross' maps (mid excluded) with at most
    # (latent / 2)^2 pixels (max_size = base_size // 16), averaged per resolution:
    # {side: [B, 77, side, side]} for side = latent / 2 (stride 16) and latent / 4 (stride 32)
    attn = mean_attention(store, latent.shape[-1] // 2, places=("up", "down"))
    s32 = torch.cat([s32, attn[latent.shape[-1] // 4]], dim=1)
    s16 = torch.cat([s16, attn[latent.shape[-1] // 2]], dim=1)
    logits = simple_decoding(r, s64, s32, s16, s8)
    return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)


# ---- tests ---------------------------------------------------------------------------------------
def test_vpd_refer_release_converts_loads_and_reproduces_the_reference():
    release = refer_release()
    assert detect_release_format(release) == "vpd_refer"
    # a class offset with which the random model's maps hold both classes (the mask is checked)
    release["classifier.conv1_1.bias"] = torch.tensor([4.0, 0.0])
    cfg = refer_config()
    model, _, dropped = converted_model(cfg, "vpd_refer", release)
    assert dropped == {}
    sentences = ["the man on the left in a red shirt", " ".join(["zebra"] * 90)]  # the second is truncated
    torch.manual_seed(2)
    images = [torch.randint(0, 256, (3, SIZE, SIZE)).float() for _ in sentences]
    logits = []
    hook = model.refer_decoder.register_forward_hook(lambda m, a, out: logits.append(out[0]))
    with torch.no_grad():
        ours = model([{"image": im, "sentence": s, "height": SIZE, "width": SIZE} for im, s in zip(images, sentences)])
        hook.remove()
        unet, vae = diffusers_parts(release, "", cfg)
        text_encoder = model.backbone.feature_extractor.prompt.text_encoder.module  # SD's CLIP text tower
        refs = [vpd_refer_reference(release, unet, vae, text_encoder, im[None] / 255.0, reference_ids([s]))[0]
                for im, s in zip(images, sentences)]
    for i, ref in enumerate(refs):
        assert (ref[1] - ref[0]).std() > 1e-2  # not a constant map
        torch.testing.assert_close(logits[0][i], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[i]["ref_mask"], ref.softmax(dim=0)[1], rtol=1e-5, atol=1e-5)
        mask = ref.argmax(dim=0) == 1  # test.py: argmax of the two logits
        margin = (ref[1] - ref[0]).abs() > 1e-4  # pixels whose decision float rounding cannot flip
        assert torch.equal((ours[i]["ref_mask"] > 0.5)[margin], mask[margin])
        assert 0 < mask.sum() < mask.numel()
    assert not torch.allclose(refs[0], refs[1], atol=1e-3)


def test_sentence_tokens_are_the_reference_tokenizer_ids():
    """VPD tokenises with transformers' CLIPTokenizer (truncation to 77, padding with
    <|endoftext|>); our SD tokenizer gives the same ids. The CLIPTokenizer of VPD's time cleaned
    the text with ftfy (in VPD's requirements) first; today's has no ftfy step, so the sentences
    that cleaning changes (HTML entities, curly quotes, full-width letters) are compared cleaned."""
    import ftfy

    from odise_ext.diffusion.prompts.sd_text import sd_tokenize

    sentences = ["The man on the LEFT, wearing a red shirt!", "guy in blue   jeans", "left-most giraffe (partly hidden)",
                 "2nd cup's handle", " ".join(["zebra"] * 100), ""]
    assert torch.equal(sd_tokenize(sentences, TOKENS), reference_ids(sentences))
    unclean = ["fish &amp; chips", "naïve guy’s hat", "the “big” one", "ｆｕｌｌ width"]
    assert torch.equal(sd_tokenize(unclean, TOKENS), reference_ids([ftfy.fix_text(s) for s in unclean]))


def test_test_time_resize_and_mask_follow_the_reference(tmp_path):
    """refer/test.py: torchvision ``Resize((512, 512))`` of the PIL image (bilinear) and of the
    "P"-mode target (nearest), at which the masks are compared."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    from odise_ext.dense.mappers.refer import ReferMapper, annotation_mask

    cfg = scaled_config("vpd_refcoco.yaml")
    size = tuple(cfg.DATA.REFER.SIZE)
    assert size == (512, 512)
    rgb = np.random.RandomState(0).randint(0, 256, (61, 83, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "im.png")
    polygon = [10.5, 5.0, 70.0, 12.0, 50.0, 55.5, 12.0, 40.0]
    record = {"file_name": str(tmp_path / "im.png"), "height": 61, "width": 83, "sentences": ["the thing"],
              "annotations": [{"segmentation": [polygon]}]}
    out = ReferMapper(cfg, is_train=False)(record)
    image = np.asarray(TF.resize(Image.fromarray(rgb), list(size)))
    target = np.asarray(TF.resize(Image.fromarray(annotation_mask(record["annotations"], 61, 83), mode="P"), list(size)))
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), image)
    assert np.array_equal(out["ref_mask"].numpy(), target) and 0 < target.sum() < target.size
    assert (out["height"], out["width"]) == size and out["sentence"] == "the thing"


def test_full_size_release_shapes_fit_the_refcoco_config():
    """Every released key and full-size shape fits configs/vpd/vpd_refcoco.yaml with no override
    (built on the meta device)."""
    model = tool("convert_vpd_checkpoint")._model_of(os.path.join(ROOT, "configs", "vpd", "vpd_refcoco.yaml"))
    release = {k: torch.empty(s, device="meta") for k, s in release_key_shapes("vpd_refer").items()}
    converted, dropped = convert_release_to_ours(release, "vpd_refer")
    assert dropped == {} and check_against_model(converted, model, "vpd_refer") == []
