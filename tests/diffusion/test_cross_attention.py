import torch
from diffusers import UNet2DConditionModel

from odise_ext.diffusion.cross_attention import CrossAttentionRecorder


def _tiny_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=24,
        attention_head_dim=8, norm_num_groups=8,
    ).eval()


def test_recording_matches_sdpa_and_maps_are_distributions():
    unet = _tiny_unet()
    x = torch.randn(2, 4, 8, 12)  # non-square latent
    ctx = torch.randn(2, 5, 24)
    t = torch.tensor([1, 1])
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=ctx).sample
    rec = CrossAttentionRecorder(unet)
    with torch.no_grad():
        with rec.record() as maps:
            recorded = unet(x, t, encoder_hidden_states=ctx).sample
        after = unet(x, t, encoder_hidden_states=ctx).sample
    assert torch.allclose(plain, recorded, atol=1e-5)
    assert torch.allclose(plain, after, atol=1e-6)
    # one down, one mid and two up cross-attention layers, in execution order
    assert len(maps) == len(rec.layer_names) == 4
    assert [m.latent_stride for m in maps] == [1, 2, 1, 1]
    assert [tuple(m.probs.shape) for m in maps] == [(2, 8, 12, 5), (2, 4, 6, 5), (2, 8, 12, 5), (2, 8, 12, 5)]
    for m in maps:
        assert torch.allclose(m.probs.sum(-1), torch.ones_like(m.probs[..., 0]), atol=1e-5)


def test_maps_equal_manual_softmax_and_carry_gradient():
    unet = _tiny_unet()
    rec = CrossAttentionRecorder(unet)
    x = torch.randn(1, 4, 8, 8)
    ctx = torch.randn(1, 3, 24, requires_grad=True)
    with rec.record() as maps:
        unet(x, torch.tensor([0]), encoder_hidden_states=ctx)
    # independent check on the first layer: its query input is the normed hidden state
    # entering attn2; recompute from a hook-free definition using the same projections
    name = rec.layer_names[0]
    attn = dict(unet.named_modules())[name]
    captured = {}

    def grab(module, args, kwargs):
        captured["hs"] = args[0] if args else kwargs["hidden_states"]

    h = attn.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        unet(x, torch.tensor([0]), encoder_hidden_states=ctx)
    h.remove()
    hs = captured["hs"]
    d = attn.to_q.out_features // attn.heads
    q = attn.to_q(hs).view(1, -1, attn.heads, d).transpose(1, 2)
    k = attn.to_k(ctx).view(1, -1, attn.heads, d).transpose(1, 2)
    manual = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, -1).mean(1)
    assert torch.allclose(maps[0].probs.reshape(1, -1, 3), manual, atol=1e-5)
    maps[0].probs[..., 0].sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0


def _recording_leftovers(unet):
    """Recording processors and forward pre-hooks anywhere on ``unet``."""
    from odise_ext.diffusion.cross_attention import _RecordingProcessor

    procs = [n for n, p in unet.attn_processors.items() if isinstance(p, _RecordingProcessor)]
    hooks = [n for n, m in unet.named_modules() if m._forward_pre_hooks]
    return procs, hooks


def test_nothing_of_the_recorder_stays_on_the_unet_outside_a_recording():
    unet = _tiny_unet()
    own = {n: type(p) for n, p in unet.attn_processors.items()}
    rec = CrossAttentionRecorder(unet)
    assert _recording_leftovers(unet) == ([], [])  # building installs nothing
    x, ctx, t = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 24), torch.tensor([0])
    with torch.no_grad():
        with rec.record() as maps:
            procs, hooks = _recording_leftovers(unet)
            assert len(procs) == 4 and hooks  # installed while recording
            with rec.record() as inner:  # nested (a checkpoint recomputation): its own list
                unet(x, t, encoder_hidden_states=ctx)
            assert _recording_leftovers(unet)[0] == procs  # still recording the outer block
            unet(x, t, encoder_hidden_states=ctx)
        assert len(inner) == len(maps) == 4
        assert _recording_leftovers(unet) == ([], [])
        assert {n: type(p) for n, p in unet.attn_processors.items()} == own
        try:  # an exception in the pass (e.g. an early stop) removes them too
            with rec.record():
                raise RuntimeError("stop")
        except RuntimeError:
            pass
    assert _recording_leftovers(unet) == ([], [])
