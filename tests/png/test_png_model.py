"""PNGDiffusion (tiny, random frozen SD): EIPA dynamic prompting, gradient flow, losses, switches,
inference output and input validation, plus the phrase-pixel attention ops it is built from.

Every test builds ``configs/testing/png_tiny.yaml`` (a second build costs about a second) and
runs on a few narratives of the embedded shapes dataset at 64 px.
"""
import math
from functools import partial

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

import odise_ext  # noqa: F401  (registers models, prompt modules, mappers and datasets)
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper
from odise_ext.png.attention import BidirectionalAttention, ScoredCrossAttention
from odise_ext.png.diffusion_mask_head import phrase_cross_entropy, phrase_distribution

CONFIG = "configs/testing/png_tiny.yaml"
# An adapter before the first cross-attention block would hide static prompting entirely: with
# these blocks down_blocks.0 still sees the static phrases, down_blocks.1/2 and the mid block
# inherit the first adapter's prompts and each up block gets its own.
SPARSE_EIPA = ["MODEL.PNG.EIPA.BLOCKS", '["down_blocks.1", "up_blocks.1", "up_blocks.2", "up_blocks.3"]']
SWITCHES = {
    "full": [],
    "no_eipa": ["MODEL.PNG.EIPA.ENABLED", "False"],
    "no_mlma": ["MODEL.PNG.MLMA.ENABLED", "False"],
    "no_decoder": ["MODEL.PNG.DECODER.ENABLED", "False"],
    "static_baseline": ["MODEL.PNG.EIPA.ENABLED", "False", "MODEL.PNG.DECODER.ENABLED", "False"],
}


def _model(*opts, seed=0):
    cfg = setup_cfg(CONFIG, list(opts), freeze=True)
    torch.manual_seed(seed)
    return cfg, build_model(cfg)


@pytest.fixture(scope="module")
def narratives(shapes_root):
    """Six mapped training narratives (with GT) of the shapes world; the first three have
    different phrase counts (batches then hold padding phrases)."""
    cfg = setup_cfg(CONFIG, freeze=True)
    mapper = build_dataset_mapper(cfg, True)
    mapped = [mapper(d) for d in DatasetCatalog.get("png_shapes_train")[:24]]
    by_count = sorted(mapped, key=lambda x: len(x["phrase_token_spans"]))
    chosen = [by_count[-1], by_count[0], by_count[len(by_count) // 2]]
    assert len({len(x["phrase_token_spans"]) for x in chosen}) > 1
    return chosen + [x for x in mapped if not any(x is c for c in chosen)][:3]


def _batch(narratives, n=3):
    return [dict(x) for x in narratives[:n]]


def _static_context(model, batch):
    """[B, L, D] what static prompting feeds every block: phrase features, then zeros."""
    phrases, _ = model.prompt.phrase_encoder(
        [x["caption_tokens"] for x in batch], [x["phrase_token_spans"] for x in batch]
    )
    context = phrases.new_zeros(len(batch), model.prompt.context_length, phrases.shape[-1])
    context[:, : phrases.shape[1]] = phrases
    return context


def _record_contexts(model, batch):
    """Run the prediction, recording ``encoder_hidden_states`` of every cross-attention layer.

    Returns:
        predictions and ``[(layer name, [B, L, D] context)]`` in execution order.
    """
    unet = model.backbone.feature_extractor.unet.module
    seen, handles = [], []
    for name in model.backbone.attention_layer_names:
        attn = unet.get_submodule(name)

        def hook(module, args, kwargs, name=name):
            seen.append((name, kwargs["encoder_hidden_states"].detach().clone()))

        handles.append(attn.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            predictions = model.predict(model.preprocess_image(batch).tensor, batch)
    finally:
        for h in handles:
            h.remove()
    return predictions, seen


def _block_of(layer: str) -> str:
    return layer.split(".attentions.")[0]


# ------------------------------------------------------------------------------------ EIPA


def test_eipa_rewrites_the_prompts_of_later_blocks(narratives):
    cfg, model = _model(*SPARSE_EIPA)
    model.eval()
    batch = _batch(narratives)
    predictions, seen = _record_contexts(model, batch)
    static = _static_context(model, batch)
    adapters = {a.block: a for a in predictions["adapters"]}
    assert [a.block for a in predictions["adapters"]] == ["down_blocks.1", "up_blocks.1", "up_blocks.2", "up_blocks.3"]
    num = predictions["valid"].shape[1]
    order = ["down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2", "up_blocks.3"]
    blocks_seen = {_block_of(name) for name, _ in seen}
    assert blocks_seen == {"down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.1", "up_blocks.2", "up_blocks.3"}

    for name, context in seen:
        block = _block_of(name)
        # the latest adapter at or before this block provides its prompts
        source = [b for b in order[: order.index(block) + 1] if b in adapters]
        if not source:
            assert torch.equal(context, static), f"{name} should see the static phrase features"
            continue
        expected = adapters[source[-1]].prompts
        assert torch.allclose(context[:, :num], expected, atol=1e-6), f"{name} does not see {source[-1]}'s prompts"
        assert not torch.allclose(context[:, :num], static[:, :num], atol=1e-3), f"{name} still sees static prompts"
        assert torch.count_nonzero(context[:, num:]) == 0  # padding tokens stay zero

    # each adapter refines the prompts it received (the previous adapter's), only at real phrases
    valid = predictions["valid"]
    previous = static[:, :num]
    for block in ["down_blocks.1", "up_blocks.1", "up_blocks.2", "up_blocks.3"]:
        change = (adapters[block].prompts - previous).abs().amax(-1)  # [B, P]
        assert (change[valid] > 1e-4).all(), f"adapter {block} left a phrase prompt unchanged"
        assert torch.count_nonzero(change[~valid]) == 0, f"adapter {block} wrote into padding slots"
        previous = adapters[block].prompts
    assert not valid.all(), "the batch should mix narratives with different phrase counts"


def test_without_eipa_every_block_sees_the_static_phrases(narratives):
    cfg, model = _model("MODEL.PNG.EIPA.ENABLED", "False")
    model.eval()
    assert model.prompt.adapters is None and not model.prompt.adapter_blocks
    batch = _batch(narratives)
    predictions, seen = _record_contexts(model, batch)
    static = _static_context(model, batch)
    assert predictions["adapters"] == []
    assert len(seen) >= 10
    for name, context in seen:
        assert torch.equal(context, static), f"{name} does not see the static phrase features"


def test_eipa_masked_attention_follows_the_diffusion_head(narratives):
    """With masked attention, adapter l's cross-attention sees only its phrase's foreground in the
    diffusion mask head built from the maps of blocks before l (here: a changed result)."""
    batch = _batch(narratives)
    _, masked = _model(*SPARSE_EIPA)
    _, free = _model(*SPARSE_EIPA, "MODEL.PNG.EIPA.MASKED_ATTENTION", "False")
    free.load_state_dict(masked.state_dict())
    masked.eval(), free.eval()
    with torch.no_grad():
        a = masked.predict(masked.preprocess_image(batch).tensor, batch)["adapters"]
        b = free.predict(free.preprocess_image(batch).tensor, batch)["adapters"]
    # the first adapter (down_blocks.1) follows down_blocks.0's maps: masking must matter
    assert not torch.allclose(a[0].prompts, b[0].prompts, atol=1e-5)


# ------------------------------------------------------------------------------ gradients


def test_gradients_reach_adapters_and_heads_but_not_frozen_weights(narratives):
    cfg, model = _model()
    model.train()
    losses = model(_batch(narratives, 4))
    sum(losses.values()).backward()

    frozen = {
        "unet": model.backbone.feature_extractor.unet,
        "vae": model.backbone.feature_extractor.vae,
        "text encoder": model.prompt.phrase_encoder.text_encoder,
    }
    for what, module in frozen.items():
        params = list(module.parameters())
        assert params
        assert not any(p.requires_grad for p in params), f"{what} has trainable parameters"
        assert all(p.grad is None for p in params), f"a gradient was computed for the frozen {what}"

    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert len([n for n in trainable if n.startswith("backbone.feature_extractor.prompt.adapters.")]) > 7 * 10
    assert not any(n.startswith("prompt.") for n in model.state_dict()), "the prompt module is saved twice"
    for name, p in trainable.items():
        if name != "diffusion_head.layer_logits":
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
    # Exactly the weights of the cross-attention layers that ran get a gradient. png_tiny decodes
    # the UNet's output for the mask features (VAE_DECODER_INPUT "unet_output"), so the UNet runs
    # to its end and every layer has a map; with "latent" it would stop at its last tap.
    _, seen = _record_contexts(model, _batch(narratives, 4))
    ran = torch.tensor([name in {n for n, _ in seen} for name in model.diffusion_head.layer_names])
    assert cfg.MODEL.DIFFUSION.VAE_DECODER_INPUT == "unet_output" and ran.all()
    grad = model.diffusion_head.layer_logits.grad
    assert (grad[ran] != 0).all() and (grad[~ran] == 0).all()


def test_diffusion_head_loss_flows_through_the_frozen_unet_into_the_first_adapter(narratives):
    """The diffusion CE depends on the first adapter only through the UNet's later
    cross-attention (its maps are computed from the adapter's prompts)."""
    cfg, model = _model()
    model.train()
    losses = model(_batch(narratives, 4))
    losses["loss_diffusion_ce"].backward()
    first = model.prompt.adapters["down_blocks_0"]
    assert first.gate.grad is not None and first.gate.grad.abs().sum() > 0
    assert first.phrase_out.weight.grad.abs().sum() > 0
    # nothing of the adapter's own mask/class heads is involved in that loss
    assert first.class_embed.weight.grad is None


# -------------------------------------------------------------------------- losses, switches


def _expected_keys(cfg):
    p = cfg.MODEL.PNG
    keys = {"loss_diffusion_ce"}
    if p.EIPA.ENABLED:
        for i in range(len(p.EIPA.BLOCKS)):
            keys |= {f"loss_adapter{i}_{t}" for t in ("ce", "mask", "dice")}
    if p.DECODER.ENABLED:
        keys |= {f"loss_decoder_{t}" for t in ("ce", "mask", "dice")}
        keys |= {f"loss_decoder_{t}_{j}" for t in ("ce", "mask", "dice") for j in range(p.DECODER.NUM_LAYERS)}
    return keys


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_losses_and_one_training_step_under_every_switch(switch, narratives):
    from odise_ext.engine.optimizer import build_optimizer

    cfg, model = _model(*SWITCHES[switch])
    model.train()
    batch = _batch(narratives, 4)
    losses = model(batch)
    assert set(losses) == _expected_keys(cfg)
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), f"{key} = {value}"
        assert value > 0, f"{key} is zero on random predictions"
    if switch == "no_mlma":
        assert len(model.mlma.layers) == 0
    if switch == "static_baseline":
        assert set(losses) == {"loss_diffusion_ce"} and model.decoder is None and model.prompt.adapters is None

    optimizer = build_optimizer(cfg, model)
    optimizer.zero_grad()
    total = sum(losses.values())
    total.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "diffusion_head.layer_logits" in with_grad
    for prefix, enabled in (("backbone.feature_extractor.prompt.adapters.", cfg.MODEL.PNG.EIPA.ENABLED), ("decoder.", cfg.MODEL.PNG.DECODER.ENABLED), ("mlma.", cfg.MODEL.PNG.DECODER.ENABLED)):
        assert any(n.startswith(prefix) for n in with_grad) == enabled, prefix
    optimizer.step()
    # one step lowers the loss of the same batch (everything here is deterministic)
    assert sum(model(batch).values()) < total.detach()


def test_phrase_cross_entropy_hand_computed():
    valid = torch.tensor([[True, True, False]])
    probs = torch.zeros(1, 3, 2, 2)
    probs[0, 0] = torch.tensor([[0.9, 0.5], [0.25, 0.5]])
    probs[0, 1] = 1 - probs[0, 0]
    gt = torch.zeros(1, 3, 2, 2)
    gt[0, 0, 0, 0] = 1  # phrase 0 at (0, 0)
    gt[0, 1, 0, 1] = 1  # phrase 1 at (0, 1)
    gt[0, 0, 1, 0] = gt[0, 1, 1, 0] = 1  # both at (1, 0): target 1/2 each
    gt[0, 2, 1, 1] = 1  # only the padding phrase at (1, 1): ignored
    expected = (-math.log(0.9) - math.log(0.5) - 0.5 * (math.log(0.25) + math.log(0.75))) / 3
    assert phrase_cross_entropy(probs, gt, valid).item() == pytest.approx(expected, rel=1e-6)


def test_phrase_distribution_renormalises_over_valid_phrases():
    probs = torch.tensor([0.2, 0.3, 0.1, 0.4]).expand(1, 2, 2, 4)  # 4 tokens: 3 phrase slots + padding
    valid = torch.tensor([[True, False, True]])
    out = phrase_distribution(probs, valid)
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([2 / 3, 0.0, 1 / 3]))


# ----------------------------------------------------------------------------- inference


@pytest.mark.parametrize("switch", ["full", "no_decoder", "static_baseline"])
def test_inference_returns_one_probability_map_per_phrase(switch, narratives):
    cfg, model = _model(*SWITCHES[switch])
    model.eval()
    batch = _batch(narratives)
    batch[1]["height"], batch[1]["width"] = 90, 120  # non-square original image
    for x in batch:
        for key in ("gt_masks", "phrase_classes"):
            x.pop(key)  # inference needs no ground truth
    with torch.no_grad():
        outputs = model(batch)
    assert len(outputs) == len(batch)
    for x, out in zip(batch, outputs):
        masks = out["png_masks"]
        assert masks.shape == (len(x["phrase_token_spans"]), x["height"], x["width"])
        assert masks.min() >= 0 and masks.max() <= 1 and torch.isfinite(masks).all()
        if switch == "static_baseline":
            # the diffusion head is a distribution over the narrative's phrases at every pixel
            assert torch.allclose(masks.sum(0), torch.ones_like(masks[0]), atol=1e-4)
        else:
            assert masks.std() > 0


def test_a_narrative_result_does_not_depend_on_its_batch(narratives):
    cfg, model = _model()
    model.eval()
    counts = [len(x["phrase_token_spans"]) for x in narratives]
    few, many = counts.index(min(counts)), counts.index(max(counts))
    assert counts[few] < counts[many]
    with torch.no_grad():
        alone = model([narratives[few]])[0]["png_masks"]
        together = model([narratives[many], narratives[few]])[1]["png_masks"]
    assert torch.allclose(alone, together, atol=1e-4)


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(narratives):
    cfg, model = _model()
    model.train()
    good = narratives[0]

    no_phrase = dict(good, phrase_token_spans=torch.zeros(0, 2, dtype=torch.long), gt_masks=good["gt_masks"][:0])
    with pytest.raises(ValueError, match="no phrase to ground"):
        model([no_phrase])

    with pytest.raises(ValueError, match="GT masks .* for .* phrases"):
        model([dict(good, gt_masks=good["gt_masks"][:-1])])

    with pytest.raises(KeyError, match="lacks \\['gt_masks'\\]"):
        model([{k: v for k, v in good.items() if k != "gt_masks"}])

    bad_class = dict(good, phrase_classes=torch.full_like(good["phrase_classes"], cfg.MODEL.PNG.NUM_CLASSES))
    with pytest.raises(ValueError, match="target labels must be in"):
        model([bad_class])

    model.eval()
    # one-token phrases, one more than the UNet context holds
    too_many = cfg.MODEL.PNG.CONTEXT_LENGTH + 1
    tokens = torch.cat([good["caption_tokens"][:1], good["caption_tokens"][1:2].repeat(too_many), good["caption_tokens"][-1:]])
    spans = torch.stack([torch.arange(1, too_many + 1), torch.arange(2, too_many + 2)], 1)
    with pytest.raises(ValueError, match="CONTEXT_LENGTH"):
        model([dict(good, caption_tokens=tokens, phrase_token_spans=spans)])


def test_config_errors_name_the_keys():
    with pytest.raises(ValueError, match="MODEL.PNG.EIPA.BLOCKS: unknown UNet block"):
        _model("MODEL.PNG.EIPA.BLOCKS", '["up_blocks.9"]')
    with pytest.raises(ValueError, match="has no cross-attention"):
        _model("MODEL.PNG.EIPA.BLOCKS", '["up_blocks.0"]')
    with pytest.raises(ValueError, match="PHRASE_BLOCKS .* have no adapter"):
        _model("MODEL.PNG.EIPA.BLOCKS", '["up_blocks.1", "up_blocks.2"]')
    with pytest.raises(TypeError, match="DynamicPhrasePrompt"):
        _model("MODEL.DIFFUSION.PROMPT.NAME", "EmptyPrompt")


# ---------------------------------------------------------------- attention building blocks


def test_scored_cross_attention_respects_the_allowed_pixels():
    torch.manual_seed(0)
    attn = ScoredCrossAttention(8, 2)
    phrases, pixels, pos = torch.randn(1, 2, 8), torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    allowed = torch.tensor([[[True, True, False, False, False], [False] * 5]])
    out, scores = attn(phrases, pixels, pos, allowed)
    # phrase 0 only sees pixels 0-1: changing the others leaves its output unchanged
    other = pixels.clone()
    other[:, 2:] += 5.0
    out2, _ = attn(phrases, other, pos, allowed)
    assert torch.allclose(out[:, 0], out2[:, 0], atol=1e-6)
    # phrase 1 has no allowed pixel, so it attends everywhere (and does change)
    assert not torch.allclose(out[:, 1], out2[:, 1], atol=1e-3)
    unmasked, unmasked_scores = attn(phrases, pixels, pos)
    assert torch.allclose(out[:, 1], unmasked[:, 1], atol=1e-6)
    # the returned scores (the adapter's mask logits) ignore the restriction
    assert torch.allclose(scores, unmasked_scores)
    assert scores.shape == (1, 2, 5)


def test_bidirectional_attention_ignores_padding_phrases_and_uses_both_softmaxes():
    torch.manual_seed(0)
    attn = BidirectionalAttention(8, 2)
    pixels, ppos = torch.randn(1, 6, 8), torch.randn(1, 6, 8)
    phrases, tpos = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    padding = torch.tensor([[False, False, True]])
    new_pixels, new_phrases = attn(pixels, ppos, phrases, tpos, padding)
    changed = phrases.clone()
    changed[:, 2] += 10.0
    new_pixels2, new_phrases2 = attn(pixels, ppos, changed, tpos, padding)
    assert torch.allclose(new_pixels, new_pixels2, atol=1e-6)  # pixels never read a padding phrase
    assert torch.allclose(new_phrases[:, :2], new_phrases2[:, :2], atol=1e-6)
    # each phrase reads a convex combination of pixels: moving one pixel moves every phrase
    moved = pixels.clone()
    moved[:, 0] += 10.0
    _, new_phrases3 = attn(moved, ppos, phrases, tpos, padding)
    assert ((new_phrases3 - new_phrases).abs().amax(-1) > 1e-3).all()


def test_eipa_block_layout_is_the_loaded_unets():
    """The adapters' widths come from the built UNet: each block's input channels, observed by a
    hook during a forward pass, match the layout (also for widths the config does not state)."""
    from odise_ext.diffusion import load_sd_components
    from odise_ext.png.eipa import unet_block_layout

    cfg = setup_cfg(CONFIG, ["MODEL.DIFFUSION.UNET_CONFIG.BLOCK_OUT_CHANNELS", "[16, 32, 48, 48]"], freeze=True)
    unet = load_sd_components(cfg, ["unet"])["unet"][0]
    layout = unet_block_layout(unet.config)
    seen = {}
    blocks = [(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)] + [("mid_block", unet.mid_block)]
    blocks += [(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    def record(name, module, args, kwargs):
        seen.setdefault(name, (args[0] if args else kwargs["hidden_states"]).shape[1])

    handles = [b.register_forward_pre_hook(partial(record, n), with_kwargs=True) for n, b in blocks]
    try:
        with torch.no_grad():
            unet(torch.randn(1, 4, 8, 8), 1, encoder_hidden_states=torch.randn(1, 3, unet.config.cross_attention_dim))
    finally:
        for h in handles:
            h.remove()
    assert {n: v["in_channels"] for n, v in layout.items()} == seen
    has_attention = {n: hasattr(b, "attentions") for n, b in blocks}
    assert {n: v["cross_attention"] for n, v in layout.items()} == has_attention


def test_png_runs_whole_images_not_windows():
    with pytest.raises(TypeError, match="'DiffusionBackbone'"):
        _model("MODEL.BACKBONE.NAME", "WindowedDiffusionBackbone")
