"""The fast paths of MODEL.SPEED compute what the reference paths compute; input checks that no
longer synchronise with the GPU still reject bad input."""
import pytest
import torch
from detectron2.modeling import build_backbone

import odise_ext  # noqa: F401  (registers the backbone)
from odise_ext.config import setup_cfg
from odise_ext.odise.clip.open_clip_wrapper import build_open_clip_model
from odise_ext.utils.input_checks import check_all
from odise_ext.dense.losses.lovasz import lovasz_softmax
from odise_ext.odise.open_vocab import mask_clip as mask_clip_module
from odise_ext.odise.open_vocab.mask_clip import mask_attention_allowed, mask_attention_bias, mask_clip_embed
from odise_ext.utils.precision import float32_loss

from conftest import DEVICES

TINY = "configs/testing/odise_tiny.yaml"


def _close(a, b):
    """fp32 rounding only: relative error of the whole map, and no element far off."""
    assert (a - b).norm() <= 1e-5 * b.norm(), ((a - b).norm() / b.norm()).item()
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def _backbone_features(device, *opts):
    cfg = setup_cfg(TINY, ["MODEL.DEVICE", device, *opts])
    torch.manual_seed(0)  # the same trainable projections in every build
    backbone = build_backbone(cfg).to(device).eval()
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        return backbone(images)


@pytest.mark.parametrize("device", DEVICES)
def test_mask_clip_sdpa_equals_float_bias_reference(device, monkeypatch):
    cfg = setup_cfg(TINY, [])
    torch.manual_seed(0)
    visual = build_open_clip_model(cfg).visual.to(device).eval()
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 48, 40, generator=gen).to(device)
    logits = (4 * torch.randn(2, 5, 12, 10, generator=gen)).to(device)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    masks = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    with torch.no_grad():
        monkeypatch.setattr(mask_clip_module.F, "scaled_dot_product_attention", recording_sdpa)
        fast = mask_clip_embed(visual, images, logits, mean, std, sdpa=True)
        monkeypatch.undo()
        ref = mask_clip_embed(visual, images, logits, mean, std, sdpa=False)
    # the fast path ran: one SDPA call per block, each with the boolean [B, 1, L, L] mask
    assert len(masks) == len(visual.transformer.resblocks)
    assert all(m.dtype == torch.bool and m.shape[:2] == (2, 1) for m in masks)
    assert fast.shape == (2, 5, visual.proj.shape[1])
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_boolean_mask_is_the_float_bias():
    probs = torch.rand(3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    allowed = mask_attention_allowed(probs, 8)
    bias = mask_attention_bias(probs, 8, num_heads=2)
    assert allowed.dtype == torch.bool and allowed.shape == (3, 1, 9, 9)
    expected = torch.where(allowed, 0.0, float("-inf")).expand(3, 2, 9, 9).reshape(6, 9, 9)
    assert torch.equal(bias, expected)
    # every query keeps at least the CLS token: no fully masked row (NaN in softmax)
    assert allowed[:, 0, :, 4].all()


@pytest.mark.parametrize("device", DEVICES)
def test_unet_sdpa_processor_equals_reference_processor(device):
    fast = _backbone_features(device, "MODEL.SPEED.SDPA", True)
    ref = _backbone_features(device, "MODEL.SPEED.SDPA", False)
    for name in ref:
        _close(fast[name], ref[name])


def test_channels_last_and_compiled_blocks_equal_the_plain_model():
    ref = _backbone_features("cpu")
    cl = _backbone_features("cpu", "MODEL.SPEED.CHANNELS_LAST", True)
    # "eager": dynamo traces and runs every block's graph without code generation (fast on CPU)
    compiled = _backbone_features("cpu", "MODEL.SPEED.COMPILE", "eager")
    for name in ref:
        _close(cl[name], ref[name])
        _close(compiled[name], ref[name])


def test_compiled_blocks_are_compiled():
    cfg = setup_cfg(TINY, ["MODEL.SPEED.COMPILE", "eager"])
    torch.manual_seed(0)
    backbone = build_backbone(cfg)
    unet = backbone.feature_extractor.unet.module
    compiled = lambda m: getattr(m.forward, "_torchdynamo_orig_callable", None) is not None  # noqa: E731
    assert compiled(unet.down_blocks[0].resnets[0])
    assert compiled(unet.down_blocks[0].attentions[0])  # its inner Attention goes with it
    assert not compiled(unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1)
    assert compiled(backbone.feature_extractor.vae.module.encoder.mid_block.attentions[0])
    assert not compiled(unet)  # the hooks of the taps stay outside compiled code


def test_compile_leaves_dynamo_settings_of_the_process_alone():
    import torch._dynamo

    from odise_ext.diffusion import speed

    config = torch._dynamo.config
    limits = lambda: {k: v for k, v in config.get_config_copy().items() if "limit" in k}  # noqa: E731
    before = limits()
    cfg = setup_cfg(TINY, ["MODEL.SPEED.COMPILE", "eager"])
    torch.manual_seed(0)
    backbone = build_backbone(cfg)
    with torch.no_grad():
        backbone(torch.rand(1, 3, 64, 64))
    assert limits() == before  # neither building nor running the compiled blocks changed them

    seen = []

    @torch._dynamo.disable  # runs as plain Python inside the compiled call
    def spy(x):
        seen.append(config.recompile_limit)
        return x + 1

    speed._compiled(spy, "eager", speed._recompile_limits())(torch.zeros(2))
    assert seen == [max(before["recompile_limit"], speed._RECOMPILE_LIMIT)]  # raised for the call only
    assert limits() == before


def test_check_all_raises_the_message_on_cpu():
    check_all(torch.tensor([True, True]), "never")
    check_all(torch.zeros(0, dtype=torch.bool), "empty passes")
    with pytest.raises(ValueError, match="labels out of range"):
        check_all(torch.tensor([True, False]), "labels out of range")


def test_lovasz_bad_labels_still_error_and_ignored_pixels_change_nothing():
    probs = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)).softmax(-1)
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 1])
    with pytest.raises(ValueError, match="every pixel carries the ignore label"):
        lovasz_softmax(probs, torch.full((10,), 255))
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\)"):
        lovasz_softmax(probs, labels.clone().index_fill_(0, torch.tensor([3]), 7))
    ignored = labels.clone()
    ignored[[2, 5]] = 255
    keep = ignored != 255
    # the same loss as on the valid pixels alone (the loss of a smaller problem)
    torch.testing.assert_close(lovasz_softmax(probs, ignored), lovasz_softmax(probs[keep], labels[keep]))


def test_float32_loss_runs_in_float32_under_autocast():
    seen = {}

    @float32_loss
    def loss(x, extra):
        seen["x"], seen["y"] = x.dtype, extra["y"][0].dtype
        seen["mm"] = (x @ x.t()).dtype  # autocast would make this bf16
        return x.sum()

    x = torch.randn(4, 4, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(x, {"y": [torch.ones(2, dtype=torch.float16)]})
    assert seen == {"x": torch.float32, "y": torch.float32, "mm": torch.float32}
    assert out.dtype == torch.float32
    out.backward()
    assert x.grad.dtype == torch.bfloat16 and torch.equal(x.grad, torch.ones_like(x.grad))


def test_text_encoding_in_chunks_equals_one_pass():
    from odise_ext.odise.clip.open_clip_wrapper import _TEXT_CHUNK, build_clip

    clip = build_clip(setup_cfg(TINY, []))
    texts = [f"a photo of thing number {i}" for i in range(2 * _TEXT_CHUNK + 5)]
    with torch.no_grad():
        chunked = clip.encode_text(texts)
        whole = clip.clip.encode_text(clip.tokenize(texts), normalize=False).float()
    assert chunked.shape == (len(texts), clip.embed_dim)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
