"""DiffusionFeatureExtractor on the tiny SD: taps vs. an un-hooked full diffusers pass, latent/noise
formula, early stopping, prompt hooks (time embedding and per-block callbacks)."""
import math

import pytest
import torch
import torch.nn.functional as F

from odise_ext.diffusion import DiffusionFeatureExtractor, load_sd_components, parse_taps
from odise_ext.diffusion.feature_extractor import alphas_cumprod
from odise_ext.diffusion.prompts import PromptModule, PromptOutput

from conftest import make_cfg

TINY = "configs/testing/base_tiny_diffusion.yaml"


def tiny_cfg(*opts):
    return make_cfg(TINY, "MODEL.DIFFUSION.PROMPT.NAME", "EmptyPrompt", *opts)


@pytest.fixture(scope="module")
def extractor():
    return DiffusionFeatureExtractor(tiny_cfg())


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _capture_inputs(modules):
    store, handles = {}, []
    for name, m in modules.items():
        hook = (lambda n: lambda mod, args, kwargs: store.__setitem__(n, (args, kwargs)))(name)
        handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    return store, handles


def test_schedule_by_hand():
    abar = alphas_cumprod(0.00085, 0.012, 1000)
    assert abar[0].item() == pytest.approx(1 - 0.00085, abs=1e-12)
    beta1 = (math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) / 999) ** 2
    assert abar[1].item() == pytest.approx((1 - 0.00085) * (1 - beta1), abs=1e-12)


def test_tap_parsing_errors(extractor):
    with pytest.raises(ValueError, match="Bad tap"):
        parse_taps(["unet.up_blocks.0:middle"], [8])
    with pytest.raises(ValueError, match="Bad tap"):
        parse_taps(["clip.visual:input"], [8])
    with pytest.raises(ValueError, match="TAP_STRIDES"):
        parse_taps(["unet.up_blocks.0:input"], [8, 16])
    with pytest.raises(ValueError, match="has no module 'up_blocks.9.resnets.2'"):
        DiffusionFeatureExtractor(
            unet=extractor.unet, vae=extractor.vae, prompt=extractor.prompt,
            taps=parse_taps(["unet.up_blocks.9.resnets.2:input"], [8]),
            timestep=0, alpha_cumprod=1.0, noise=None, scale_latent=True,
        )


def test_tap_shapes_and_channels(extractor, images):
    # Tiny UNet widths 32/32/64/64: up-block resnet-2 inputs 64+64, 64+32, 32+32, 32+32; tiny VAE
    # 16/16/32/32. Native resolutions for a 64 px window: /4, /8, /64, /32, /16, /8, /8, /4.
    assert extractor.tap_channels == [32, 32, 128, 96, 64, 64, 32, 32]
    feats = extractor(images)
    sizes = [16, 8, 1, 2, 4, 8, 8, 16]
    for f, c, s in zip(feats, extractor.tap_channels, sizes):
        assert f.shape == (2, c, s, s) and f.dtype == torch.float32


def test_taps_equal_full_unhooked_diffusers_pass(extractor, images):
    cfg = tiny_cfg()
    vae, unet = extractor.vae.module, extractor.unet.module
    text_encoder, _ = load_sd_components(cfg, ["text_encoder"])["text_encoder"]
    ids = torch.tensor([[49406] + [49407] * 76])
    with torch.no_grad():
        context = text_encoder(input_ids=ids).last_hidden_state.expand(2, -1, -1)
        mean = vae.encode(images * 2 - 1).latent_dist.mean
        z = mean * 0.18215
        noise = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(42))
        noise = F.interpolate(noise, size=(8, 8), mode="bicubic", align_corners=False)
        sample = math.sqrt(1 - 0.00085) * z + math.sqrt(0.00085) * noise

        modules = {
            0: vae.encoder.down_blocks[2].resnets[1],
            1: vae.encoder.down_blocks[3].resnets[1],
            **{2 + k: unet.up_blocks[k].resnets[2] for k in range(4)},
            6: vae.decoder.up_blocks[0].resnets[2],
            7: vae.decoder.up_blocks[1].resnets[2],
        }
        store, handles = _capture_inputs(modules)
        unet_in, h2 = _capture_inputs({"unet": unet})
        try:
            vae.encode(images * 2 - 1)
            unet(sample, 0, encoder_hidden_states=context)
            vae.decode(mean)  # clean latent, unscaled
        finally:
            for h in handles + h2:
                h.remove()
        feats = extractor(images)
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, store[i][0][0], rtol=1e-4, atol=1e-5)


def test_unet_input_without_noise_and_timestep():
    cfg = tiny_cfg(
        "MODEL.DIFFUSION.ADD_NOISE", False,
        "MODEL.DIFFUSION.TIMESTEP", 1,
        "MODEL.DIFFUSION.SCALE_LATENT", False,
    )
    ext = DiffusionFeatureExtractor(cfg)
    x = torch.rand(1, 3, 64, 64)
    store, handles = _capture_inputs({"unet": ext.unet.module})
    with torch.no_grad():
        ext(x)
        mean = ext.vae.module.encode(x * 2 - 1).latent_dist.mean
    for h in handles:
        h.remove()
    args, kwargs = store["unet"]
    torch.testing.assert_close(args[0], mean)  # no noise, no scaling (VPD)
    assert args[1].tolist() == [1]


def test_unused_layers_never_run(extractor, images):
    vae, unet = extractor.vae.module, extractor.unet.module
    ran = []
    watched = {
        "unet.up_blocks.3.resnets.2": unet.up_blocks[3].resnets[2],  # its *input* is the last tap
        "unet.conv_out": unet.conv_out,
        "vae.decoder.up_blocks.1.resnets.2": vae.decoder.up_blocks[1].resnets[2],
        "vae.decoder.up_blocks.2": vae.decoder.up_blocks[2],
        "vae.decoder.conv_out": vae.decoder.conv_out,
        "vae.encoder.conv_out": vae.encoder.conv_out,  # the encoder must run to the end
    }
    handles = [
        m.register_forward_hook((lambda n: lambda *a: ran.append(n))(n)) for n, m in watched.items()
    ]
    try:
        extractor(images)
    finally:
        for h in handles:
            h.remove()
    assert ran == ["vae.encoder.conv_out"]


def test_no_unet_taps_skips_unet_and_prompt():
    class Boom(PromptModule):
        def forward(self, images, image_index, **inputs):
            raise AssertionError("prompt must not run")

    base = DiffusionFeatureExtractor(tiny_cfg())
    taps = parse_taps(["vae.encoder.down_blocks.2.resnets.1:input"], [4])
    ext = DiffusionFeatureExtractor(
        unet=base.unet, vae=base.vae, prompt=Boom(), taps=taps,
        timestep=0, alpha_cumprod=1.0, noise=None, scale_latent=True,
    )
    assert ext(torch.rand(1, 3, 64, 64))[0].shape == (1, 32, 16, 16)


class _CallbackPrompt(PromptModule):
    """Test prompt: context c0; replaces the prompt of up_blocks.1 by c1; records the calls."""

    def __init__(self, c0, c1, delta=None):
        super().__init__()
        self.c0, self.c1, self.delta = c0, c1, delta

    def forward(self, images, image_index, **inputs):
        state = {"calls": [], "tag": inputs.get("tag")}
        return PromptOutput(context=self.c0, time_embed_delta=self.delta, state=state)

    def block_callback(self, name, hidden_states, context, prompt):
        prompt.state["calls"].append((name, tuple(hidden_states.shape), context is not None, len(prompt.attention)))
        return self.c1 if name == "up_blocks.1" else None


def test_block_callback_replaces_prompt_of_that_block_only(extractor):
    c0, c1 = torch.randn(1, 77, 32), torch.randn(1, 77, 32)
    prompt = _CallbackPrompt(c0, c1)
    ext = DiffusionFeatureExtractor(
        unet=extractor.unet, vae=extractor.vae, prompt=prompt, taps=extractor.taps,
        timestep=0, alpha_cumprod=1 - 0.00085, noise=extractor.shared_noise, scale_latent=True,
    )
    unet = ext.unet.module
    attn2 = {f"{kind}.{i}": blocks[i].attentions[0].transformer_blocks[0].attn2
             for kind, blocks in [("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)]
             for i in range(4) if hasattr(blocks[i], "attentions")}
    seen, handles = _capture_inputs(attn2)
    state_box = {}
    orig_forward = prompt.forward

    def forward(*a, **k):
        out = orig_forward(*a, **k)
        state_box["state"] = out.state
        return out

    prompt.forward = forward
    try:
        ext(torch.rand(1, 3, 64, 64), prompt_inputs={"tag": "x"})
    finally:
        for h in handles:
            h.remove()
    for name, (args, kwargs) in seen.items():
        expected = c1 if name == "up_blocks.1" else c0
        torch.testing.assert_close(kwargs["encoder_hidden_states"], expected)
    state = state_box["state"]
    assert state["tag"] == "x"
    names = [c[0] for c in state["calls"]]
    down, up = [f"down_blocks.{i}" for i in range(4)], [f"up_blocks.{i}" for i in range(4)]
    assert names == down + ["mid_block"] + up
    # down_blocks.3 / up_blocks.0 of SD v1 have no cross-attention.
    has_ctx = {c[0]: c[2] for c in state["calls"]}
    assert not has_ctx["down_blocks.3"] and not has_ctx["up_blocks.0"] and has_ctx["up_blocks.1"]
    assert state["calls"][0][1] == (1, 32, 8, 8)


def test_time_embedding_delta_is_added(extractor):
    c0 = torch.randn(1, 77, 32)
    delta = torch.randn(1, 128)  # time embedding width = 4 x 32
    ext = DiffusionFeatureExtractor(
        unet=extractor.unet, vae=extractor.vae, prompt=_CallbackPrompt(c0, None, delta),
        taps=extractor.taps, timestep=0, alpha_cumprod=1.0, noise=None, scale_latent=True,
    )
    unet = ext.unet.module
    seen, handles = _capture_inputs({"res": unet.down_blocks[0].resnets[0]})
    try:
        ext(torch.rand(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        t_emb = unet.time_proj(torch.tensor([0]))
        expected = unet.time_embedding(t_emb) + delta
    torch.testing.assert_close(seen["res"][0][1], expected)
    # Hooks are removed after the call: a plain UNet call is unaffected.
    assert not unet.time_embedding._forward_hooks


def test_vae_decoder_can_decode_the_unet_output(images):
    """PNG's mask features: the VAE decoder decodes the latent the UNet predicts (unscaled)."""
    taps = ["unet.up_blocks.2.resnets.2:input", "vae.decoder.up_blocks.1.resnets.2:input"]
    opts = ["MODEL.DIFFUSION.TAPS", taps, "MODEL.DIFFUSION.TAP_STRIDES", [16, 4], "MODEL.DIFFUSION.ADD_NOISE", False]
    plain = DiffusionFeatureExtractor(tiny_cfg(*opts))
    ext = DiffusionFeatureExtractor(tiny_cfg(*opts, "MODEL.DIFFUSION.VAE_DECODER_INPUT", "unet_output"))
    assert ext.decode_unet_output and not plain.decode_unet_output
    unet_tap, decoder_tap = ext(images)

    # independently: full diffusers passes without any hook of ours
    vae, unet = ext.vae.module, ext.unet.module
    with torch.no_grad():
        mean = vae.encode(images * 2 - 1).latent_dist.mode()
        context = ext.prompt(images, torch.arange(2)).context
        pred = unet(mean * vae.config.scaling_factor, ext.timestep, encoder_hidden_states=context).sample
        store, handles = _capture_inputs({"tap": vae.decoder.up_blocks[1].resnets[2]})
        try:
            vae.decode(pred / vae.config.scaling_factor)
        finally:
            for h in handles:
                h.remove()
    torch.testing.assert_close(decoder_tap, store["tap"][0][0].float(), atol=1e-5, rtol=1e-4)
    # the UNet taps are unchanged; the decoder features are not those of the posterior mean
    plain.load_state_dict(ext.state_dict())
    unet_plain, decoder_plain = plain(images)
    torch.testing.assert_close(unet_tap, unet_plain)
    assert (decoder_tap - decoder_plain).abs().max() > 1e-3

    with pytest.raises(ValueError, match="VAE_DECODER_INPUT"):
        DiffusionFeatureExtractor(tiny_cfg("MODEL.DIFFUSION.VAE_DECODER_INPUT", "noise"))
    with pytest.raises(ValueError, match="needs both UNet and VAE-decoder taps"):
        DiffusionFeatureExtractor(tiny_cfg(
            "MODEL.DIFFUSION.TAPS", taps[:1], "MODEL.DIFFUSION.TAP_STRIDES", [16],
            "MODEL.DIFFUSION.VAE_DECODER_INPUT", "unet_output",
        ))


class _AttentionPrompt(_CallbackPrompt):
    needs_attention = True


def test_prompt_that_needs_attention_gets_the_maps_so_far_and_extract_returns_them(extractor):
    c0 = torch.randn(1, 77, 32)
    kwargs = dict(unet=extractor.unet, vae=extractor.vae, taps=extractor.taps, timestep=0,
                  alpha_cumprod=1 - 0.00085, noise=extractor.shared_noise, scale_latent=True)
    plain = DiffusionFeatureExtractor(prompt=_CallbackPrompt(c0, c0), **kwargs)
    assert plain.recorder is None
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    out = plain.extract(images)
    assert out.attention == [] and all(c[3] == 0 for c in out.prompt.state["calls"])
    # (The recorder's processors fall back to SDPA when inactive: the shared UNet stays usable.)
    ext = DiffusionFeatureExtractor(prompt=_AttentionPrompt(c0, c0), record_attention=True, **kwargs)
    out = ext.extract(images)
    # after the forward no recording processor or hook of the recorder remains on the UNet
    from odise_ext.diffusion.cross_attention import _RecordingProcessor

    unet = ext.unet.module
    assert not any(isinstance(p, _RecordingProcessor) for p in unet.attn_processors.values())
    assert [n for n, m in unet.named_modules() if m._forward_pre_hooks or m._forward_hooks] == []
    # Reference: the recorder around a plain UNet call with the same latent and context.
    vae = ext.vae.module
    latent = vae.quant_conv(vae.encoder(images * 2 - 1))[:, :4] * vae.config.scaling_factor
    with torch.no_grad(), ext.recorder.record() as maps:
        ext.unet.module(ext._noisy(latent), ext.timestep, encoder_hidden_states=c0)
    # Taps stop the UNet early, so the call records a prefix of the full pass's layers.
    assert 0 < len(out.attention) <= len(maps)
    for got, ref in zip(out.attention, maps):
        assert got.name == ref.name
        torch.testing.assert_close(got.probs, ref.probs, rtol=1e-4, atol=1e-5)
    # Block callbacks see the maps of the layers that ran before their block, in order.
    seen = [c[3] for c in out.prompt.state["calls"]]
    assert seen[0] == 0 and seen == sorted(seen) and seen[-1] <= len(out.attention)
    torch.testing.assert_close(torch.cat([f.flatten() for f in out.features]),
                               torch.cat([f.flatten() for f in plain(images)]), rtol=1e-4, atol=1e-4)


def test_one_loop_is_the_plain_pass_bit_for_bit(images):
    """The refinement options at their one-pass values (loops=1, tuned UNet, gradient
    checkpointing) change nothing: the taps equal, bit for bit, a plain diffusers pass by hand
    (VAE posterior mean, unscaled clean latent, UNet at t, VAE decoder) and those of the
    extractor built without them."""
    cfg = tiny_cfg("MODEL.DIFFUSION.ADD_NOISE", False, "MODEL.DIFFUSION.SCALE_LATENT", False)
    torch.manual_seed(0)
    ex = DiffusionFeatureExtractor(cfg, unet_mode="tuned", loops=1, gradient_checkpointing=True)
    assert ex.loops == 1 and ex.loop_time_embeds is None and ex.unet.module.is_gradient_checkpointing
    ex.eval()
    vae, unet = ex.vae.module, ex.unet.module
    with torch.no_grad():
        feats = ex(images)
        mean = vae.quant_conv(vae.encoder(images * 2 - 1))[:, :4]
        context = ex.prompt(images, torch.arange(2)).context
        modules = {
            0: vae.encoder.down_blocks[2].resnets[1],
            1: vae.encoder.down_blocks[3].resnets[1],
            **{2 + k: unet.up_blocks[k].resnets[2] for k in range(4)},
            6: vae.decoder.up_blocks[0].resnets[2],
            7: vae.decoder.up_blocks[1].resnets[2],
        }
        store, handles = _capture_inputs(modules)
        try:
            vae.quant_conv(vae.encoder(images * 2 - 1))
            unet(mean, ex.timestep, encoder_hidden_states=context)
            vae.decoder(vae.post_quant_conv(mean))
        finally:
            for h in handles:
                h.remove()
        # and the same extractor built without any refinement option
        torch.manual_seed(0)
        plain = DiffusionFeatureExtractor(cfg)
        plain_feats = plain(images)
    for i, f in enumerate(feats):
        assert torch.equal(f, store[i][0][0].float()), i
        assert torch.equal(f, plain_feats[i]), i
