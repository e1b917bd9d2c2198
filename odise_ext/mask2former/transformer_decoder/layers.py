# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py
"""Building blocks of the masked-attention decoder (batch-first).

Parameter names match ``nn.MultiheadAttention`` and Mask2Former's layers, so Mask2Former / ODISE
checkpoints load unchanged; the attention itself calls ``F.scaled_dot_product_attention`` with a
boolean mask broadcast over heads (no per-head copy of the mask).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiheadAttention", "SelfAttentionLayer", "CrossAttentionLayer", "FFNLayer", "MLP"]


class MultiheadAttention(nn.Module):
    """Multi-head attention with a boolean "may attend" mask.

    A query row whose mask allows no key attends to every key instead (Mask2Former's rule for
    queries with an empty predicted mask; it also keeps fully padded rows finite).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: Optional[torch.Tensor] = None,
        key_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """
        Args:
            query: [B, Lq, C]; key, value: [B, Lk, C].
            attn_mask: bool, True where a query may attend a key; [B, Lq, Lk], or
                [B, 1 or num_heads, Lq, Lk].
            key_padding_mask: [B, Lk] bool, True at padded keys (never attended unless a row
                has nothing else).
        Returns:
            [B, Lq, C].
        """
        bs, n_q, _ = query.shape
        n_k = key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)

        def heads(x, w, b):
            return (
                F.linear(x, w, b)
                .view(bs, -1, self.num_heads, self.embed_dim // self.num_heads)
                .transpose(1, 2)
            )

        q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
        mask = None
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError(f"attn_mask must be bool (True = may attend), got {attn_mask.dtype}")
            mask = attn_mask if attn_mask.dim() == 4 else attn_mask[:, None]
        if key_padding_mask is not None:
            if key_padding_mask.shape != (bs, n_k):
                raise ValueError(
                    f"key_padding_mask must be [{bs}, {n_k}], got {tuple(key_padding_mask.shape)}"
                )
            keep = ~key_padding_mask[:, None, None, :]
            mask = keep if mask is None else mask & keep
        if mask is not None:
            mask = mask | ~mask.any(dim=-1, keepdim=True)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(bs, n_q, self.embed_dim))


def _with_pos(x: torch.Tensor, pos: Optional[torch.Tensor]) -> torch.Tensor:
    return x if pos is None else x + pos


class SelfAttentionLayer(nn.Module):
    """Residual self-attention among queries (pre- or post-norm)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(self, tgt, query_pos=None, key_padding_mask=None):
        """tgt, query_pos: [B, Q, C]; key_padding_mask: [B, Q] bool. Returns [B, Q, C]."""
        x = self.norm(tgt) if self.normalize_before else tgt
        q = k = _with_pos(x, query_pos)
        tgt = tgt + self.dropout(self.self_attn(q, k, x, key_padding_mask=key_padding_mask))
        return tgt if self.normalize_before else self.norm(tgt)


class CrossAttentionLayer(nn.Module):
    """Residual (masked) cross-attention from queries to one level of pixel features."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False):
        super().__init__()
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(self, tgt, memory, attn_mask=None, pos=None, query_pos=None):
        """
        Args:
            tgt, query_pos: [B, Q, C]; memory, pos: [B, HW, C].
            attn_mask: bool [B, 1 or heads, Q, HW], True where a query may attend a pixel.
        Returns:
            [B, Q, C].
        """
        x = self.norm(tgt) if self.normalize_before else tgt
        out = self.multihead_attn(
            _with_pos(x, query_pos), _with_pos(memory, pos), memory, attn_mask=attn_mask
        )
        tgt = tgt + self.dropout(out)
        return tgt if self.normalize_before else self.norm(tgt)


class FFNLayer(nn.Module):
    """Residual two-layer MLP with ReLU."""

    def __init__(
        self, d_model: int, dim_feedforward: int = 2048, dropout: float = 0.0, normalize_before: bool = False
    ):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(self, tgt):
        """tgt: [B, Q, C]. Returns [B, Q, C]."""
        x = self.norm(tgt) if self.normalize_before else tgt
        tgt = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x)))))
        return tgt if self.normalize_before else self.norm(tgt)


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (attribute ``layers``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _xavier_matrices(module: nn.Module):
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
