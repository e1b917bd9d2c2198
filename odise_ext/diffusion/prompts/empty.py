"""The empty prompt: SD's text embedding of "" for every window."""
import torch
from detectron2.config import configurable

from .base import PROMPT_REGISTRY, PromptModule, PromptOutput
from .sd_text import encode_sd_prompts

__all__ = ["EmptyPrompt", "empty_prompt_context"]


def empty_prompt_context(text_encoder) -> torch.Tensor:
    """[1, 77, D] float32: SD text encoder's last hidden state for "" (BOS + EOT x 76)."""
    return encode_sd_prompts(text_encoder, [""])


@PROMPT_REGISTRY.register()
class EmptyPrompt(PromptModule):
    """Unconditional prompt. No parameters; the embedding is computed once at build time."""

    @configurable
    def __init__(self, *, empty_context: torch.Tensor):
        """
        Args:
            empty_context: [1, L, D] text embedding of "".
        """
        super().__init__()
        # Derived from frozen weights at build time, so not checkpointed.
        self.register_buffer("empty_context", empty_context.detach().float(), persistent=False)
        self.num_tokens, self.token_dim = int(empty_context.shape[1]), int(empty_context.shape[2])

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        return {"empty_context": empty_prompt_context(text_encoder)}

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """[N, 3, R, R] windows -> context [N, L, D] (a broadcast view, no copy)."""
        return PromptOutput(context=self.empty_context.expand(images.shape[0], -1, -1))
