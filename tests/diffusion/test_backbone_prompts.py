"""Prompt modules: SD tokenisation, the empty prompt, the implicit captioner's formulas."""
import pytest
import torch

from odise_ext.diffusion import load_sd_components
from odise_ext.odise import ImplicitCaptioner
from odise_ext.diffusion.prompts import (
    PROMPT_REGISTRY,
    EmptyPrompt,
    build_prompt_module,
    sd_tokenize,
)

from conftest import make_cfg

TINY = "configs/testing/base_tiny_diffusion.yaml"


def tiny_cfg(*opts):
    return make_cfg(TINY, *opts)


@pytest.fixture(scope="module")
def sd():
    parts = load_sd_components(tiny_cfg(), ["text_encoder", "unet"])
    return {k: module for k, (module, _) in parts.items()}


@pytest.fixture(scope="module")
def text_encoder(sd):
    return sd["text_encoder"]


@pytest.fixture(scope="module")
def unet(sd):
    return sd["unet"]


@pytest.fixture(scope="module")
def captioner(text_encoder, unet):
    return build_prompt_module(tiny_cfg(), text_encoder=text_encoder, unet=unet)


def test_sd_tokenize_pads_with_end_of_text():
    ids = sd_tokenize(["", "a cat"])
    assert ids[0].tolist() == [49406] + [49407] * 76
    assert ids[1].tolist() == [49406, 320, 2368] + [49407] * 74


def test_empty_prompt_is_text_encoder_of_empty_string(text_encoder, unet):
    prompt = build_prompt_module(tiny_cfg("MODEL.DIFFUSION.PROMPT.NAME", "EmptyPrompt"),
                                 text_encoder=text_encoder, unet=unet)
    assert isinstance(prompt, EmptyPrompt) and not prompt.uses_block_callbacks
    with torch.no_grad():
        ref = text_encoder(input_ids=torch.tensor([[49406] + [49407] * 76])).last_hidden_state
    out = prompt(torch.rand(3, 3, 64, 64), torch.tensor([0, 0, 1]))
    assert out.context.shape == (3, 77, 32) and out.time_embed_delta is None
    for i in range(3):
        torch.testing.assert_close(out.context[i], ref[0])
    assert list(prompt.state_dict()) == []  # derived from frozen weights: never checkpointed


def test_captioner_starts_as_empty_prompt(captioner, text_encoder):
    assert isinstance(captioner, ImplicitCaptioner)
    with torch.no_grad():
        ref = text_encoder(input_ids=torch.tensor([[49406] + [49407] * 76])).last_hidden_state
    out = captioner(torch.rand(2, 3, 64, 64), torch.arange(2))
    torch.testing.assert_close(out.context, ref.expand(2, -1, -1))
    torch.testing.assert_close(out.time_embed_delta, torch.zeros(2, 128))


def test_captioner_formula(captioner):
    images = torch.rand(2, 3, 64, 64)
    c = captioner
    with torch.no_grad():
        c.alpha_cond.normal_()
        c.alpha_cond_time_embed.normal_()
        out = c(images, torch.arange(2))
        prefix = c.clip.encode_image_prefix(images)  # [2, 32]
        tokens = prefix @ c.clip_project.linear.weight.T + c.clip_project.linear.bias  # [2, 32]
        tokens = tokens[:, None, :] + c.clip_project.positional_embedding
        ref = c.empty_context + torch.tanh(c.alpha_cond) * tokens
        time = prefix @ c.time_embed_project.linear.weight.T + c.time_embed_project.linear.bias
        time = time + c.time_embed_project.positional_embedding[0, 0]
        ref_delta = torch.tanh(c.alpha_cond_time_embed) * time
        c.alpha_cond.zero_()
        c.alpha_cond_time_embed.zero_()
    torch.testing.assert_close(out.context, ref)
    torch.testing.assert_close(out.time_embed_delta, ref_delta)


def test_captioner_parameters_follow_odise_names(captioner):
    trainable = {n: tuple(p.shape) for n, p in captioner.named_parameters() if p.requires_grad}
    # ODISE: alpha_cond 1x77x768, alpha_cond_time_embed 1280, clip_project.{linear,
    # positional_embedding 1x77x768}, time_embed_project.{linear 1280x768, positional_embedding
    # 1x1x1280}; tiny widths here.
    assert trainable == {
        "alpha_cond": (1, 77, 32),
        "alpha_cond_time_embed": (128,),
        "clip_project.linear.weight": (32, 32),
        "clip_project.linear.bias": (32,),
        "clip_project.positional_embedding": (1, 77, 32),
        "time_embed_project.linear.weight": (128, 32),
        "time_embed_project.linear.bias": (128,),
        "time_embed_project.positional_embedding": (1, 1, 128),
    }


def test_unknown_prompt_name(text_encoder, unet):
    assert {"EmptyPrompt", "ImplicitCaptioner"} <= {name for name, _ in PROMPT_REGISTRY}
    with pytest.raises(KeyError, match="NoSuchPrompt"):
        build_prompt_module(tiny_cfg("MODEL.DIFFUSION.PROMPT.NAME", "NoSuchPrompt"),
                            text_encoder=text_encoder, unet=unet)
