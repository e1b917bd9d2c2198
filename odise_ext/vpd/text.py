"""Frozen text features from SD v1's text encoder (a transformers ``CLIPTextModel``, i.e. CLIP
ViT-L/14's text tower for real SD v1): pooled sentence embeddings (VPD's class prompts) and
per-token features with their validity mask (VPD's referring prompts)."""
from typing import Sequence, Tuple

import torch
from torch import nn

from ..diffusion.prompts.sd_text import EOT_TOKEN, sd_tokenize

__all__ = ["encode_pooled_text", "encode_text_tokens"]

def _device(text_encoder: nn.Module) -> torch.device:
    return next(text_encoder.parameters()).device


@torch.no_grad()
def encode_pooled_text(text_encoder: nn.Module, texts: Sequence[str]) -> torch.Tensor:
    """CLIP's pooled text embedding: the final-norm hidden state of the <|endoftext|> token.

    Args:
        text_encoder: ``CLIPTextModel``.
        texts: K strings.
    Returns:
        [K, D] float32.
    """
    if not texts:
        raise ValueError("encode_pooled_text: no texts given")
    length = text_encoder.config.max_position_embeddings
    ids = sd_tokenize(list(texts), length).to(_device(text_encoder))
    return text_encoder(input_ids=ids).pooler_output.float()


@torch.no_grad()
def encode_text_tokens(
    text_encoder: nn.Module, texts: Sequence[str], length: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token features of sentences truncated / padded to ``length`` tokens.

    CLIP's text transformer is causal, so a token never sees the padding after it and no
    attention mask is needed; the returned mask marks <|startoftext|> ... <|endoftext|>.

    Args:
        text_encoder: ``CLIPTextModel``.
        texts: B strings.
        length: tokens per sentence (<= the encoder's context length).
    Returns:
        features [B, length, D] float32, mask [B, length] bool (True = real token).
    """
    max_len = text_encoder.config.max_position_embeddings
    if not 2 <= length <= max_len:
        raise ValueError(f"sentence length must be in [2, {max_len}], got {length}")
    ids = sd_tokenize(list(texts), length).to(_device(text_encoder))
    # The first <|endoftext|> ends the sentence; everything after it is padding.
    is_eot = ids == EOT_TOKEN
    after = (is_eot.long().cumsum(dim=1) - is_eot.long()) > 0
    features = text_encoder(input_ids=ids).last_hidden_state.float()
    return features, ~after
