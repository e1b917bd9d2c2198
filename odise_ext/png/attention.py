"""Phrase-pixel attention ops of the PNG model whose score maps are themselves predictions.

- :class:`ScoredCrossAttention`: phrases attend to pixels (EIPA); the head-averaged scores are
  the adapter's mask logits, so the mask head supervises the very attention that updates the
  phrases.
- :class:`BidirectionalAttention`: one phrase-pixel score map read both ways (MLMA): softmax over
  phrases updates the pixels, softmax over pixels updates the phrases.
"""
import math
from typing import Optional, Tuple

import torch
from torch import nn

__all__ = ["ScoredCrossAttention", "BidirectionalAttention"]


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, C] -> [B, heads, L, C / heads]."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, L, d] -> [B, L, heads * d]."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _check_width(dim: int, num_heads: int):
    if dim % num_heads:
        raise ValueError(f"width {dim} must be divisible by the number of heads {num_heads}")


class ScoredCrossAttention(nn.Module):
    """Multi-head cross-attention from phrases to pixels that also returns its scores."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        _check_width(dim, num_heads)
        self.num_heads = num_heads
        self.scale = 1.0 / math.sqrt(dim // num_heads)
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(
        self,
        phrases: torch.Tensor,
        pixels: torch.Tensor,
        pixel_pos: torch.Tensor,
        allowed: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            phrases: [B, P, C]; pixels: [B, S, C]; pixel_pos: [B, S, C] positional encoding.
            allowed: optional [B, P, S] bool, the pixels each phrase may attend to; a phrase with
                no allowed pixel attends everywhere (Mask2Former's rule for empty masks).
        Returns:
            output [B, P, C] and the unmasked scores [B, P, S] averaged over heads.
        """
        q = _split_heads(self.q_proj(phrases), self.num_heads)
        k = _split_heads(self.k_proj(pixels + pixel_pos), self.num_heads)
        v = _split_heads(self.v_proj(pixels), self.num_heads)
        scores = (q @ k.transpose(-1, -2)) * self.scale  # [B, heads, P, S]
        logits = scores
        if allowed is not None:
            if allowed.shape != (scores.shape[0], scores.shape[2], scores.shape[3]):
                raise ValueError(f"allowed must be {tuple(scores.shape[:1] + scores.shape[2:])}, got {tuple(allowed.shape)}")
            allowed = allowed | ~allowed.any(-1, keepdim=True)
            logits = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = self.out_proj(_merge_heads(logits.softmax(-1) @ v))
        return out, scores.mean(1)


class BidirectionalAttention(nn.Module):
    """Pixels and phrases update each other through one shared score map.

    scores[b, h, s, t] = <q(pixel s), k(phrase t)> / sqrt(d). Pixels take
    softmax_t(scores) @ v_phrase; phrases take softmax_s(scores)^T @ v_pixel. Both updates are
    residual and layer-normalised.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        _check_width(dim, num_heads)
        self.num_heads = num_heads
        self.scale = 1.0 / math.sqrt(dim // num_heads)
        self.pixel_q, self.phrase_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.pixel_v, self.phrase_v = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.pixel_out, self.phrase_out = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.pixel_norm, self.phrase_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(
        self,
        pixels: torch.Tensor,
        pixel_pos: torch.Tensor,
        phrases: torch.Tensor,
        phrase_pos: torch.Tensor,
        phrase_padding: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            pixels, pixel_pos: [B, S, C]; phrases, phrase_pos: [B, T, C].
            phrase_padding: [B, T] bool, True at padding phrases (never attended by pixels).
        Returns:
            updated pixels [B, S, C] and phrases [B, T, C].
        """
        q = _split_heads(self.pixel_q(pixels + pixel_pos), self.num_heads)
        k = _split_heads(self.phrase_k(phrases + phrase_pos), self.num_heads)
        scores = (q @ k.transpose(-1, -2)) * self.scale  # [B, heads, S, T]
        over_phrases = scores.masked_fill(phrase_padding[:, None, None, :], float("-inf")).softmax(-1)
        over_pixels = scores.softmax(-2)
        pixel_update = over_phrases @ _split_heads(self.phrase_v(phrases), self.num_heads)
        phrase_update = over_pixels.transpose(-1, -2) @ _split_heads(self.pixel_v(pixels), self.num_heads)
        pixels = self.pixel_norm(pixels + self.pixel_out(_merge_heads(pixel_update)))
        phrases = self.phrase_norm(phrases + self.phrase_out(_merge_heads(phrase_update)))
        return pixels, phrases
