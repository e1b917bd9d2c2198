"""Phrase features for Panoptic Narrative Grounding.

The frozen CLIP text encoder (Stable Diffusion's own, so phrase features live in the UNet's
cross-attention space) encodes the whole caption; the feature of a noun phrase is the mean of
its word (BPE token) features, taken from the last hidden state.

Narratives are often longer than CLIP's 77-token context. Such captions are cut into chunks of at
most ``context_length - 2`` tokens, each wrapped in <|startoftext|> ... <|endoftext|> and padded
with <|endoftext|> (SD's convention); cuts fall between phrases, never inside one, so every
phrase is encoded together with its left context in the same chunk.
"""
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..diffusion.frozen import FrozenModule
from ..diffusion.prompts.sd_text import EOT_TOKEN, SOT_TOKEN

__all__ = ["PhraseEncoder", "average_spans", "chunk_caption"]

def chunk_caption(num_tokens: int, spans: torch.Tensor, max_content: int) -> List[Tuple[int, int]]:
    """Cut the content tokens ``[1, num_tokens - 1)`` of a caption into chunks.

    Args:
        num_tokens: T, length of the caption's token ids including <start> and <end>.
        spans: [P, 2] phrase token spans [start, end), sorted and non-overlapping.
        max_content: most content tokens per chunk (context length - 2).
    Returns:
        ``[(start, end), ...]`` covering ``[1, T - 1)``; no phrase straddles two chunks.
    Raises:
        ValueError: a phrase alone is longer than ``max_content`` tokens.
    """
    chunks, start, last = [], 1, num_tokens - 1
    spans = spans.tolist()
    while start < last:
        end = min(start + max_content, last)
        for s, e in spans:
            if s < end < e:  # the cut would split this phrase: cut before it
                end = s
                break
        if end <= start:
            raise ValueError(
                f"a phrase of {max(e - s for s, e in spans)} tokens does not fit in the text "
                f"encoder's context ({max_content} tokens besides <start>/<end>)"
            )
        chunks.append((start, end))
        start = end
    return chunks or [(1, 1)]


def average_spans(word_features: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of ``word_features`` over each span.

    Args:
        word_features: [T, D].
        spans: [P, 2] token spans [start, end) into the T tokens, non-empty.
    Returns:
        [P, D].
    """
    if spans.numel() and ((spans[:, 1] <= spans[:, 0]).any() or spans.min() < 0 or spans.max() > len(word_features)):
        raise ValueError(f"phrase spans {spans.tolist()} must be non-empty and inside {len(word_features)} tokens")
    positions = torch.arange(len(word_features), device=word_features.device)
    spans = spans.to(word_features.device)
    member = (positions[None] >= spans[:, :1]) & (positions[None] < spans[:, 1:])  # [P, T]
    weights = member.to(word_features.dtype)
    return (weights @ word_features) / weights.sum(1, keepdim=True)


class PhraseEncoder(nn.Module):
    """Phrase features from a frozen transformers ``CLIPTextModel``.

    ``forward`` turns a batch of tokenised captions into padded phrase features
    [B, P_max, D] and a validity mask [B, P_max] (D = the text encoder's hidden size = the UNet's
    cross-attention width). No gradient is recorded: the encoder is frozen and its inputs are
    token ids.
    """

    def __init__(self, text_encoder: FrozenModule):
        """
        Args:
            text_encoder: frozen ``CLIPTextModel`` (SD's text encoder).
        """
        super().__init__()
        if not isinstance(text_encoder, FrozenModule):
            raise TypeError("PhraseEncoder needs a FrozenModule-wrapped text encoder")
        self.text_encoder = text_encoder
        config = text_encoder.module.config
        self.context_length = int(config.max_position_embeddings)
        self.dim = int(config.hidden_size)

    @torch.no_grad()
    def forward(
        self, caption_tokens: Sequence[torch.Tensor], phrase_token_spans: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            caption_tokens: B LongTensors [T_b]: <start>, BPE ids, <end> (not truncated).
            phrase_token_spans: B LongTensors [P_b, 2]: each phrase's [start, end) in its caption.
        Returns:
            phrases [B, P_max, D] float32 (zeros at padding) and valid [B, P_max] bool.
        """
        if len(caption_tokens) != len(phrase_token_spans):
            raise ValueError(f"{len(caption_tokens)} captions but {len(phrase_token_spans)} span lists")
        device = self.text_encoder.module.get_input_embeddings().weight.device
        max_content = self.context_length - 2
        ids, owners = [], []  # one row per chunk; owners: (caption, start, end)
        for b, (tokens, spans) in enumerate(zip(caption_tokens, phrase_token_spans)):
            if tokens.dim() != 1 or len(tokens) < 2 or spans.dim() != 2 or spans.shape[-1] != 2:
                raise ValueError(
                    f"caption {b}: expected caption_tokens [T] (with <start>/<end>) and spans [P, 2], "
                    f"got {tuple(tokens.shape)} and {tuple(spans.shape)}"
                )
            if spans.numel() and (spans[:, 0].min() < 1 or spans[:, 1].max() > len(tokens) - 1):
                raise ValueError(f"caption {b}: phrase spans {spans.tolist()} reach <start>/<end> or beyond")
            for start, end in chunk_caption(len(tokens), spans, max_content):
                row = torch.full((self.context_length,), EOT_TOKEN, dtype=torch.long)
                row[0] = SOT_TOKEN
                row[1 : 1 + end - start] = tokens[start:end].cpu()
                ids.append(row)
                owners.append((b, start, end))
        hidden = self.text_encoder(input_ids=torch.stack(ids).to(device)).last_hidden_state.float()

        num = [len(s) for s in phrase_token_spans]
        phrases = hidden.new_zeros(len(num), max(num + [1]), self.dim)
        valid = torch.zeros(len(num), phrases.shape[1], dtype=torch.bool, device=hidden.device)
        for b, (tokens, spans) in enumerate(zip(caption_tokens, phrase_token_spans)):
            # Word features of the whole caption in token order; <start>/<end> are never inside a span.
            words = hidden.new_zeros(len(tokens), self.dim)
            for row, (owner, start, end) in zip(hidden, owners):
                if owner == b:
                    words[start:end] = row[1 : 1 + end - start]
            if len(spans):
                phrases[b, : len(spans)] = average_spans(words, spans)
                valid[b, : len(spans)] = True
        return phrases, valid
