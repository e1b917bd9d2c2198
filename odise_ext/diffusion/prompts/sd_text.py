"""Text prompts through SD v1's text encoder (a transformers ``CLIPTextModel``).

SD v1 tokenises with CLIP's BPE vocabulary, wraps the text in <|startoftext|> ... <|endoftext|>
and pads with <|endoftext|> to 77 tokens; the UNet's context is the encoder's last hidden
state. open_clip's tokenizer uses the same vocabulary but pads with 0, so pads are rewritten.
"""
from functools import lru_cache
from typing import Sequence

import torch
from torch import nn

__all__ = ["sd_tokenize", "encode_sd_prompts", "SOT_TOKEN", "EOT_TOKEN"]

# <|startoftext|> and <|endoftext|> of CLIP's BPE vocabulary (SD v1 also pads with the latter).
SOT_TOKEN, EOT_TOKEN = 49406, 49407


@lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def sd_tokenize(texts: Sequence[str], context_length: int = 77) -> torch.Tensor:
    """SD v1 token ids.

    Returns:
        [N, context_length] int64; "" gives [49406, 49407, 49407, ...].
    """
    tok = _tokenizer(context_length)
    ids = tok(list(texts))
    eot = tok.eot_token_id
    # Everything after the first <|endoftext|> is padding.
    after_eot = (ids == eot).long().cumsum(dim=1) > 0
    return torch.where(after_eot, torch.full_like(ids, eot), ids)


@torch.no_grad()
def encode_sd_prompts(text_encoder: nn.Module, texts: Sequence[str]) -> torch.Tensor:
    """Last hidden state of SD's text encoder.

    Args:
        text_encoder: transformers ``CLIPTextModel``.
        texts: N strings.
    Returns:
        [N, L, D] float32 (L = max_position_embeddings, D = hidden size).
    """
    length = text_encoder.config.max_position_embeddings
    device = text_encoder.get_input_embeddings().weight.device
    ids = sd_tokenize(texts, length).to(device)
    return text_encoder(input_ids=ids).last_hidden_state.float()
