"""Prompt modules: what the diffusion UNet's cross-attention sees (registry + implementations)."""
from .base import PROMPT_REGISTRY, PromptModule, PromptOutput, SentenceTokens, build_prompt_module
from .empty import EmptyPrompt, empty_prompt_context
from .sd_text import encode_sd_prompts, sd_tokenize

__all__ = [
    "PROMPT_REGISTRY",
    "PromptModule",
    "PromptOutput",
    "SentenceTokens",
    "build_prompt_module",
    "EmptyPrompt",
    "empty_prompt_context",
    "encode_sd_prompts",
    "sd_tokenize",
]
