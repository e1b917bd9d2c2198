# Adapted from NVlabs/ODISE@49c0378420ed949bab2a28cedea12ea3922120d7:odise/modeling/meta_arch/ldm.py
"""ODISE's implicit captioner.

A frozen CLIP image encoder embeds every window; the projected CLS embedding ("prefix") becomes
77 learnable-position tokens that are added, gated by tanh(alpha_cond) (zero-initialised, so
training starts from the empty prompt), to SD's empty-prompt embedding. A second gated
projection of the prefix is added to the UNet time embedding.

Parameter names follow ODISE (``backbone.feature_extractor.<name>`` in ODISE checkpoints):
``alpha_cond``, ``alpha_cond_time_embed``, ``clip_project.{linear,positional_embedding}``,
``time_embed_project.{linear,positional_embedding}``.
"""
import torch
from detectron2.config import configurable
from torch import nn

from .clip import ClipWrapper, build_clip
from ..diffusion.prompts.base import PROMPT_REGISTRY, PromptModule, PromptOutput
from ..diffusion.prompts.empty import empty_prompt_context

__all__ = ["ImplicitCaptioner", "PositionalLinear"]


class PositionalLinear(nn.Module):
    """``linear(x)`` broadcast over ``seq_len`` learnable positions: [N, C] -> [N, L, D]."""

    def __init__(self, in_features: int, out_features: int, seq_len: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.positional_embedding = nn.Parameter(torch.empty(1, seq_len, out_features))
        nn.init.normal_(self.positional_embedding, std=out_features**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unsqueeze(1) + self.positional_embedding


@PROMPT_REGISTRY.register()
class ImplicitCaptioner(PromptModule):
    """Image-conditioned prompt from a frozen CLIP image encoder."""

    @configurable
    def __init__(self, *, clip: ClipWrapper, empty_context: torch.Tensor, time_embed_dim: int):
        """
        Args:
            clip: frozen CLIP (may be shared with other heads).
            empty_context: [1, L, D] SD text embedding of "".
            time_embed_dim: width T of the UNet time embedding (1280 for SD v1).
        """
        super().__init__()
        self.clip = clip
        self.register_buffer("empty_context", empty_context.detach().float(), persistent=False)
        _, seq_len, dim = empty_context.shape
        self.num_tokens, self.token_dim = int(seq_len), int(dim)
        self.clip_project = PositionalLinear(clip.embed_dim, dim, seq_len)
        self.alpha_cond = nn.Parameter(torch.zeros(1, seq_len, dim))
        self.time_embed_project = PositionalLinear(clip.embed_dim, time_embed_dim, 1)
        self.alpha_cond_time_embed = nn.Parameter(torch.zeros(time_embed_dim))

    @classmethod
    def from_config(cls, cfg, text_encoder, unet, clip=None):
        return {
            "clip": clip if clip is not None else build_clip(cfg),
            "empty_context": empty_prompt_context(text_encoder),
            "time_embed_dim": unet.time_embedding.linear_2.out_features,
        }

    @property
    def shared_clip(self) -> ClipWrapper:
        """The frozen CLIP (ODISE's classifier shares it)."""
        return self.clip

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """
        Args:
            images: [N, 3, R, R] windows in [0, 1].
        Returns:
            context [N, L, D] and time_embed_delta [N, T], float32.
        """
        prefix = self.clip.encode_image_prefix(images)  # [N, E]; frozen, no graph is recorded
        tokens = self.clip_project(prefix)  # [N, L, D]
        context = self.empty_context + torch.tanh(self.alpha_cond) * tokens
        time = self.time_embed_project(prefix).squeeze(1)  # [N, T]
        delta = torch.tanh(self.alpha_cond_time_embed) * time
        return PromptOutput(context=context, time_embed_delta=delta)
