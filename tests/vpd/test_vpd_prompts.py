"""VPD / Meta-Prompts prompting on the tiny SD: text adapter, class-name / sentence / meta prompts,
attention-map features (non-square inputs), re-arrangement, recurrent refinement (1 loop = plain
forward, 2 loops = manual unrolling), gradients and optimizer lr multipliers, checkpointing."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg

from odise_ext.config import add_odise_config
from odise_ext.engine.optimizer import build_optimizer
from odise_ext.diffusion import DiffusionFeatureExtractor, load_sd_components
from odise_ext.diffusion.prompts.sd_text import sd_tokenize
from odise_ext.dense import sliding_window_inference, sliding_windows
from odise_ext.metaprompts import MetaPrompts, MetaPromptsBackbone, PromptRearrangement
from odise_ext.vpd import ClassNamePrompt, SentencePrompt, TextAdapter, VPDBackbone, average_attention_by_stride
from odise_ext.vpd.backbone import build_vpd_feature_extractor
from odise_ext.diffusion.refinement import check_refinement

from conftest import make_cfg

BASE = "configs/testing/vpd_base_tiny.yaml"


CLASSES = ["circle", "square", "sky"]


def vpd_cfg(*opts):
    return make_cfg(BASE, "MODEL.VPD.PROMPT.CLASS_NAMES", CLASSES, *opts)


def _text_encoder(cfg):
    return load_sd_components(cfg, ("text_encoder",))["text_encoder"][0]


# ---- text adapter and prompt modules ---------------------------------------------------------
def test_text_adapter_starts_within_gamma_of_identity():
    torch.manual_seed(0)
    adapter = TextAdapter(16, gamma_init=1e-4).double()  # float64: the residual is ~1e-5 of c
    c = torch.randn(5, 16, dtype=torch.float64)
    out = adapter(c)
    lin1, lin2 = adapter.mlp[0], adapter.mlp[2]
    mlp = F.linear(F.gelu(F.linear(c, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
    assert torch.equal(adapter.gamma.detach(), torch.full((16,), 1e-4).double())
    # |adapter(c) - c| <= gamma |MLP(c)|, with equality: the residual form, not just "small"
    gamma = adapter.gamma.detach()
    assert torch.all((out - c).abs() <= gamma * mlp.abs() + 1e-13)
    assert torch.allclose(out - c, gamma * mlp, atol=1e-13, rtol=0)
    assert not torch.equal(out, c)
    with pytest.raises(ValueError, match="width 16"):
        adapter(torch.randn(2, 8, dtype=torch.float64))


def test_class_name_prompt_is_pooled_clip_text_computed_once():
    cfg = vpd_cfg()
    enc = _text_encoder(cfg)
    prompt = ClassNamePrompt(cfg, text_encoder=enc, unet=None)
    # independent pooled embedding: final-norm hidden state at the first <|endoftext|>
    ids = sd_tokenize([f"a photo of a {c}" for c in CLASSES], 77)
    with torch.no_grad():
        hidden = enc(input_ids=ids).last_hidden_state
    eot = (ids == 49407).int().argmax(dim=1)
    expected = hidden[torch.arange(len(CLASSES)), eot]
    assert torch.allclose(prompt.class_embeddings, expected, atol=1e-5)
    # cached: a buffer saved in checkpoints (as VPD's released model stores it), and no text
    # encoder is kept to recompute it
    assert torch.equal(prompt.state_dict()["class_embeddings"], prompt.class_embeddings)
    assert not any("text" in n for n, _ in prompt.named_modules())
    assert prompt.num_tokens == 3
    out = prompt(torch.rand(2, 3, 64, 64), torch.arange(2))
    assert out.context.shape == (2, 3, 32)
    assert torch.allclose(out.context[1], prompt.adapter(expected), atol=1e-5)
    cfg.merge_from_list(["MODEL.VPD.PROMPT.CLASS_TEMPLATE", "no placeholder"])
    with pytest.raises(ValueError, match="CLASS_TEMPLATE"):
        ClassNamePrompt(cfg, text_encoder=enc, unet=None)


def test_sentence_prompt_tokens_mask_and_gradient():
    cfg = vpd_cfg("MODEL.VPD.PROMPT.SENTENCE_LENGTH", 8)
    prompt = SentencePrompt(cfg, text_encoder=_text_encoder(cfg), unet=None)
    sentences = ["the red circle", "a very long sentence about the blue square on the left side"]
    out = prompt(torch.rand(3, 3, 64, 64), torch.tensor([0, 1, 1]), sentences=sentences)
    assert out.context.shape == (3, 8, 32)
    assert torch.equal(out.context[1], out.context[2])  # windows of the same image share a prompt
    # <|startoftext|> the red circle <|endoftext|> = 5 real tokens; the long one is truncated
    assert out.state.mask.tolist() == [[True] * 5 + [False] * 3, [True] * 8]
    out.context.sum().backward()
    assert prompt.adapter.gamma.grad is not None and prompt.adapter.gamma.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in prompt.text_encoder.parameters())
    with pytest.raises(ValueError, match="sentences"):
        prompt(torch.rand(1, 3, 64, 64), torch.tensor([0]))


def test_meta_prompts_context_and_mlp():
    torch.manual_seed(0)
    plain = MetaPrompts(num_prompts=5, dim=8, use_mlp=False)
    out = plain(torch.rand(2, 3, 8, 8), torch.arange(2)).context
    assert out.shape == (2, 5, 8) and torch.equal(out[0], plain.prompts)
    with_mlp = MetaPrompts(num_prompts=5, dim=8, use_mlp=True)
    out = with_mlp(torch.rand(1, 3, 8, 8), torch.arange(1)).context
    assert torch.allclose(out[0], with_mlp.mlp(with_mlp.prompts))


def test_meta_prompts_shared_and_per_step():
    """One class: shared (one set, released layout ``prompts`` / ``mlp``) or per step (one set and
    one MLP per refinement step, released layout ``step_prompts.<i>`` / ``step_mlps.<i>``)."""
    torch.manual_seed(0)
    shared = MetaPrompts(num_prompts=5, dim=8, use_mlp=True)
    assert (shared.num_tokens, shared.token_dim, shared.steps) == (5, 8, None)
    assert set(shared.state_dict()) == {"prompts", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}
    out = shared(torch.rand(2, 3, 8, 8), torch.arange(2))
    assert out.step_contexts is None and out.context.shape == (2, 5, 8)

    per_step = MetaPrompts(num_prompts=5, dim=8, use_mlp=True, steps=3)
    assert (per_step.num_tokens, per_step.token_dim, per_step.steps) == (5, 8, 3)
    keys = set(per_step.state_dict())
    assert {f"step_prompts.{i}" for i in range(3)} <= keys and "prompts" not in keys
    assert {f"step_mlps.{i}.{j}.{p}" for i in range(3) for j in (0, 2) for p in ("weight", "bias")} <= keys
    assert len(keys) == 3 + 3 * 4
    out = per_step(torch.rand(2, 3, 8, 8), torch.arange(2))
    assert len(out.step_contexts) == 3
    for i, context in enumerate(out.step_contexts):
        by_hand = per_step.step_mlps[i][2](F.gelu(per_step.step_mlps[i][0](per_step.step_prompts[i])))
        assert context.shape == (2, 5, 8) and torch.allclose(context[1], by_hand, atol=1e-6)
    assert out.context is out.step_contexts[-1]
    # steps differ: each step has its own prompts
    assert not torch.allclose(out.step_contexts[0], out.step_contexts[1])
    without_mlp = MetaPrompts(num_prompts=5, dim=8, use_mlp=False, steps=2)
    out = without_mlp(torch.rand(1, 3, 8, 8), torch.arange(1))
    assert torch.equal(out.step_contexts[0][0], without_mlp.step_prompts[0])
    with pytest.raises(ValueError, match="steps"):
        MetaPrompts(num_prompts=5, dim=8, use_mlp=False, steps=0)


def test_per_step_meta_prompts_condition_each_refinement_pass():
    """Pass i of the refinement loop sees step i's context; a step count other than the loops
    is refused at build time."""
    cfg = _mp_cfg("MODEL.DIFFUSION.REFINE.LOOPS", 2, "MODEL.META_PROMPTS.PER_STEP", True)
    torch.manual_seed(0)
    ex = build_vpd_feature_extractor(cfg)
    assert ex.prompt.steps == 2 and ex.loops == 2
    seen = []
    handle = ex.unet.module.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["encoder_hidden_states"].detach().clone()), with_kwargs=True
    )
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    try:
        with torch.no_grad():
            out = ex.extract(images)
    finally:
        handle.remove()
    assert len(seen) == 2
    for context, step in zip(seen, out.prompt.step_contexts):
        assert torch.equal(context, step)
    assert not torch.equal(seen[0], seen[1])
    with pytest.raises(ValueError, match="3 prompt steps for MODEL.DIFFUSION.REFINE.LOOPS=2"):
        check_refinement(ex.unet.module, MetaPrompts(num_prompts=4, dim=8, use_mlp=False, steps=3), 2, False, False)


# ---- attention maps as features --------------------------------------------------------------
@pytest.fixture(scope="module")
def vpd_backbone():
    torch.manual_seed(0)
    return VPDBackbone(vpd_cfg())


def test_attention_features_non_square_sum_to_one(vpd_backbone):
    ex = vpd_backbone.feature_extractor
    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    out = ex.extract(images)
    out.attention = average_attention_by_stride(out.attention, ex.latent_stride)
    # latent 8x16: cross-attention layers at latent strides 1, 2, 4 (image 8, 16, 32), mid at 8
    assert {s: tuple(a.shape) for s, a in out.attention.items()} == {
        8: (2, 3, 8, 16), 16: (2, 3, 4, 8), 32: (2, 3, 2, 4), 64: (2, 3, 1, 2)
    }
    for a in out.attention.values():
        assert torch.allclose(a.sum(dim=1), torch.ones_like(a[:, 0]), atol=1e-5)
    feats = vpd_backbone(images)
    assert feats["res4"].shape == (2, 32 + 3, 4, 8) and feats["res5"].shape == (2, 64 + 3, 2, 4)
    assert feats["res3"].shape == (2, 32, 8, 16) and feats["res6"].shape == (2, 64, 1, 2)
    assert torch.allclose(feats["res4"][:, 32:], out.attention[16], atol=1e-5)


def test_attention_average_matches_manual_layer_mean(vpd_backbone):
    ex = vpd_backbone.feature_extractor
    images = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(2))
    out = ex.extract(images)
    out.attention = average_attention_by_stride(out.attention, ex.latent_stride)
    # Re-run the UNet by hand with the recorder and average the stride-32 layers ourselves.
    vae = ex.vae.module
    latent = vae.quant_conv(vae.encoder(images * 2 - 1))[:, :4]
    context = ex.prompt(images, torch.arange(1)).context
    with ex.recorder.record() as maps:
        ex.unet.module(latent, ex.timestep, encoder_hidden_states=context)
    stride32 = [m.probs for m in maps if m.probs.shape[1:3] == (2, 4)]
    assert len(stride32) == 3  # down_blocks.2 (one layer) and up_blocks.1 (two layers)
    manual = torch.stack(stride32).mean(0).permute(0, 3, 1, 2)
    assert torch.allclose(out.attention[32], manual, atol=1e-5)


def test_attention_stride_errors():
    with pytest.raises(ValueError, match="ATTENTION_STRIDES"):
        VPDBackbone(vpd_cfg("MODEL.VPD.ATTENTION_STRIDES", [4]))


# ---- Meta-Prompts re-arrangement and refinement -----------------------------------------------
def test_rearrangement_is_prompt_dot_product():
    torch.manual_seed(0)
    rearrange = PromptRearrangement([6, 10], dim=8, upsample=2, gn_groups=4)
    feats = [torch.randn(2, 6, 4, 6), torch.randn(2, 10, 2, 3)]
    prompts = torch.randn(2, 5, 8)
    out = rearrange(feats, prompts)
    assert [tuple(o.shape) for o in out] == [(2, 5, 8, 12), (2, 5, 4, 6)]
    proj = rearrange.projections[1](F.interpolate(feats[1], scale_factor=2, mode="bilinear", align_corners=False))
    for b in range(2):
        for n in range(5):
            manual = (proj[b] * prompts[b, n][:, None, None]).sum(0)  # no softmax
            assert torch.allclose(out[1][b, n], manual, atol=1e-5)


def _mp_cfg(*opts):
    return vpd_cfg(
        "MODEL.DIFFUSION.PROMPT.NAME", "MetaPrompts", "MODEL.META_PROMPTS.NUM_PROMPTS", 4,
        "MODEL.DIFFUSION.REFINE.LOOP_TIME_EMBED", True, "MODEL.VPD.ATTENTION_STRIDES", [], *opts,
    )


def test_refinement_with_one_loop_equals_plain_forward():
    cfg = _mp_cfg("MODEL.DIFFUSION.REFINE.LOOPS", 1, "MODEL.DIFFUSION.UNET_MODE", "frozen")
    torch.manual_seed(0)
    ours = build_vpd_feature_extractor(cfg)
    plain = DiffusionFeatureExtractor(cfg)  # same seeds -> same frozen weights
    plain.prompt.load_state_dict(ours.prompt.state_dict())
    unet = ours.unet.module
    with torch.no_grad():  # t_1 := the UNet's own time embedding of the configured timestep
        ours.loop_time_embeds[0] = unet.time_embedding(unet.time_proj(ours.timestep))[0]
    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    for a, b in zip(ours(images), plain(images)):
        assert torch.allclose(a, b, atol=1e-5)


def test_refinement_two_loops_matches_manual_unrolling():
    cfg = _mp_cfg("MODEL.DIFFUSION.REFINE.LOOPS", 2)
    torch.manual_seed(0)
    ex = build_vpd_feature_extractor(cfg)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    feats = ex(images)
    unet, vae = ex.unet.module, ex.vae.module
    latent = vae.quant_conv(vae.encoder(images * 2 - 1))[:, :4]
    context = ex.prompt(images, torch.arange(1)).context
    captured = {}

    def run(x, t_vec):
        h1 = unet.time_embedding.register_forward_hook(lambda m, a, o: t_vec.expand(o.shape[0], -1))
        h2 = unet.up_blocks[3].attentions[1].register_forward_hook(lambda m, a, o: captured.__setitem__("s8", o[0]))
        try:
            return unet(x, ex.timestep, encoder_hidden_states=context).sample
        finally:
            h1.remove()
            h2.remove()

    second_latent = run(latent, ex.loop_time_embeds[0])
    # the fed-back latent is the UNet's output head applied to the stride-8 features
    by_hand = unet.conv_out(unet.conv_act(unet.conv_norm_out(captured["s8"])))
    assert torch.allclose(second_latent, by_hand, atol=1e-5)
    run(second_latent, ex.loop_time_embeds[1])
    assert torch.allclose(feats[3], captured["s8"], atol=1e-5)
    run(latent, ex.loop_time_embeds[1])  # skipping the first loop changes the result
    assert not torch.allclose(feats[3], captured["s8"], atol=1e-3)


def test_gradients_reach_prompts_time_vectors_and_tuned_unet_with_lr_multiplier():
    cfg = _mp_cfg(
        "MODEL.DIFFUSION.REFINE.LOOPS", 2, "MODEL.META_PROMPTS.REARRANGE.GN_GROUPS", 4,
        "MODEL.VPD.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
        "SOLVER.BASE_LR", 1e-3, "OPTIMIZER.LR_MULTIPLIERS", [["feature_extractor.unet", 0.1]],
    )
    torch.manual_seed(0)
    backbone = MetaPromptsBackbone(cfg)
    feats = backbone(torch.rand(2, 3, 64, 64))
    assert feats["res2"].shape == (2, 4, 16, 16)  # x2 upsampled, one channel per prompt
    sum(f.square().mean() for f in feats.values()).backward()
    ex = backbone.feature_extractor
    assert ex.prompt.prompts.grad.abs().sum() > 0
    assert all(t.grad.abs().sum() > 0 for t in ex.loop_time_embeds)  # both loops
    assert ex.unet.module.conv_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in ex.vae.parameters())
    optimizer = build_optimizer(cfg, backbone)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(ex.unet.module.conv_in.weight)] == pytest.approx(1e-4)
    assert lr_of[id(ex.prompt.prompts)] == pytest.approx(1e-3)
    assert all(lr_of[id(t)] == pytest.approx(1e-3) for t in ex.loop_time_embeds)
    assert not any(id(p) in lr_of for p in ex.vae.parameters())
    # the tuned UNet is checkpointed (it changes), the frozen VAE is not
    keys = backbone.state_dict().keys()
    assert "feature_extractor.unet.module.conv_in.weight" in keys
    assert not any(k.startswith("feature_extractor.vae.module.") for k in keys)


def test_frozen_unet_gets_no_gradient_but_prompts_do():
    cfg = vpd_cfg("MODEL.DIFFUSION.UNET_MODE", "frozen")
    backbone = VPDBackbone(cfg)
    sum(f.mean() for f in backbone(torch.rand(1, 3, 64, 64)).values()).backward()
    ex = backbone.feature_extractor
    assert all(not p.requires_grad and p.grad is None for p in ex.unet.parameters())
    assert ex.prompt.adapter.gamma.grad.abs().sum() > 0
    assert not any(k.startswith("feature_extractor.unet.module.") for k in backbone.state_dict())
    with pytest.raises(ValueError, match="UNET_MODE"):
        VPDBackbone(vpd_cfg("MODEL.DIFFUSION.UNET_MODE", "half"))


def test_gradient_checkpointing_with_attention_gives_same_gradients():
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        backbone = VPDBackbone(vpd_cfg("MODEL.DIFFUSION.GRADIENT_CHECKPOINTING", ckpt))
        images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(5))
        sum(f.square().mean() for f in backbone(images).values()).backward()
        ex = backbone.feature_extractor
        grads.append((ex.unet.module.conv_in.weight.grad.clone(), ex.prompt.adapter.gamma.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-9)
    # torch's plain checkpoint would recompute the attention through SDPA (recorder inactive in
    # the backward pass) and fail; ours replays the recording path
    ex.unet.module.enable_gradient_checkpointing()
    with pytest.raises(Exception, match="(?i)recomput|saved"):
        sum(f.square().mean() for f in backbone(images).values()).backward()


# ---- sliding windows --------------------------------------------------------------------------
def test_sliding_windows_match_mmseg_grid_and_average():
    # ADE20K protocol: 512 windows every 341 px on a 512 x 683 image -> 1 x 2 windows
    assert sliding_windows(512, 683, (512, 512), (341, 341)) == [(0, 512, 0, 512), (0, 512, 171, 683)]
    # mmseg's grid count: max(H - crop + stride - 1, 0) // stride + 1 per axis
    boxes = sliding_windows(100, 250, (64, 64), (40, 40))
    assert len(boxes) == (max(100 - 64 + 39, 0) // 40 + 1) * (max(250 - 64 + 39, 0) // 40 + 1)
    image = torch.randn(3, 100, 250)
    # a position-independent predictor gives back its own output exactly
    out = sliding_window_inference(lambda w: w * 2 + 1, image, (64, 64), (40, 40))
    assert torch.allclose(out, image * 2 + 1, atol=1e-6)
    # a window-dependent one is averaged over the windows covering each pixel
    out = sliding_window_inference(lambda w: torch.arange(len(w)).float().view(-1, 1, 1, 1).expand(-1, 1, *w.shape[-2:]), image, (64, 64), (40, 40))
    count = torch.zeros(100, 250)
    total = torch.zeros(100, 250)
    for i, (y1, y2, x1, x2) in enumerate(boxes):
        count[y1:y2, x1:x2] += 1
        total[y1:y2, x1:x2] += i
    assert torch.allclose(out[0], total / count)
    with pytest.raises(ValueError, match="gaps"):
        sliding_windows(100, 100, (32, 32), (40, 40))


# ---- ODISE taps through the same extractor ----------------------------------------------------
def test_odise_taps_through_the_vpd_extractor_and_backbone():
    """ODISE's taps (VAE encoder / decoder, UNet output-block inputs, t = 0 with the fixed noise,
    implicit captioner) run unchanged through the VPD extractor; the VPD backbone concatenates
    the taps of each stride (the stride-64 tap nearest-resized to its nominal stride 32)."""
    cfg = get_cfg()
    add_odise_config(cfg)
    cfg.merge_from_file("configs/testing/base_tiny_diffusion.yaml")
    cfg.merge_from_list(["MODEL.VPD.OUT_FEATURES", ["res2", "res3", "res4", "res5"]])
    assert cfg.MODEL.DIFFUSION.ADD_NOISE and cfg.MODEL.DIFFUSION.TIMESTEP == 0
    torch.manual_seed(0)
    ours = build_vpd_feature_extractor(cfg)
    torch.manual_seed(0)
    plain = DiffusionFeatureExtractor(cfg)
    plain.prompt.load_state_dict(ours.prompt.state_dict())
    images = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a, b = ours(images), plain(images)
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-5)
    backbone = VPDBackbone(cfg)
    with torch.no_grad():
        feats = backbone(images)
    channels = backbone.feature_extractor.tap_channels
    strides = list(cfg.MODEL.DIFFUSION.TAP_STRIDES)
    for name, stride in (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32)):
        c = sum(ch for ch, s in zip(channels, strides) if s == stride)
        assert feats[name].shape == (1, c, 64 // stride, 128 // stride), name
