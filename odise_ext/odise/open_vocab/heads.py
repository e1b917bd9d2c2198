# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/odise.py
"""Open-vocabulary classification of Mask2Former queries (ODISE's label head).

``MaskPooledEmbedding`` turns each query into an embedding (hard mask pooling of the stride-4
mask features plus the decoder query); ``CategoryHead`` scores embeddings against CLIP text
embeddings of the vocabulary (max over each class's synonyms) and a learnable null class.
Module and parameter names follow ODISE's checkpoints (``post_mask_embed.*``,
``category_head.*``) so released weights convert by renaming only.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...mask2former.transformer_decoder.layers import MLP

__all__ = ["MaskPooledEmbedding", "CategoryHead", "synonym_max"]


class MaskPooledEmbedding(nn.Module):
    """Query embedding from hard-pooled mask features (masks detached) and the decoder query."""

    def __init__(self, *, mask_dim, hidden_dim, embed_dim):
        super().__init__()
        self.pool_proj = nn.Sequential(nn.LayerNorm(mask_dim), nn.Linear(mask_dim, hidden_dim))
        self.mask_embed = nn.Sequential(nn.LayerNorm(hidden_dim), MLP(hidden_dim, hidden_dim, embed_dim, 3))
        # CLIP's initial temperature; exp() of it is clamped at 100 where used.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def scale(self):
        return self.logit_scale.exp().clamp(max=100)

    def forward(self, query, mask_features, mask_logits):
        """
        Args:
            query: [B, Q, C] decoder queries after the decoder's final norm.
            mask_features: [B, M, H, W] per-pixel mask features.
            mask_logits: [B, Q, H, W] mask logits at the mask-feature resolution.
        Returns:
            [B, Q, E] mask embeddings.
        """
        m = (mask_logits.detach().sigmoid() > 0.5).to(mask_features.dtype)
        pooled = torch.einsum("bqhw,bchw->bqc", m, mask_features) / (m.sum(dim=(-2, -1))[..., None] + 1e-8)
        return self.mask_embed(self.pool_proj(pooled) + query)


def synonym_max(logits, owner, num_classes):
    """Max-ensemble over synonyms: [..., S] logits and owner [S] (class of each) -> [..., K]."""
    owner = torch.as_tensor(owner, device=logits.device, dtype=torch.long)
    out = logits.new_full(logits.shape[:-1] + (num_classes,), float("-inf"))
    out = out.scatter_reduce(-1, owner.expand_as(logits), logits, reduce="amax", include_self=True)
    if torch.isinf(out).any():
        raise ValueError("a vocabulary class has no synonym embedding")
    return out


class CategoryHead(nn.Module):
    """Cosine classifier against projected CLIP text embeddings, plus a learnable null class."""

    def __init__(self, *, clip_dim, embed_dim, null_init=None):
        """
        Args:
            clip_dim: width of CLIP text embeddings (768 for ViT-L/14).
            embed_dim: width of the mask embeddings.
            null_init: [1, clip_dim] initial null embedding (ODISE: CLIP text of ""), or None.
        """
        super().__init__()
        self.text_proj = nn.Linear(clip_dim, embed_dim)
        init = torch.zeros(1, clip_dim) if null_init is None else null_init.detach().clone().reshape(1, clip_dim)
        self.null_embed = nn.Parameter(init)

    def forward(self, mask_embed, text_embed, owner, num_classes, scale):
        """
        Args:
            mask_embed: [B, Q, E].
            text_embed: [S, clip_dim] CLIP text embeddings of every synonym of the vocabulary.
            owner: [S] class index of each synonym; num_classes: K.
            scale: scalar logit scale.
        Returns:
            [B, Q, K+1] logits (last = null).
        """
        z = F.normalize(mask_embed, dim=-1)
        t = F.normalize(self.text_proj(text_embed), dim=-1)
        n = F.normalize(self.text_proj(self.null_embed), dim=-1)
        cls_logits = synonym_max(scale * z @ t.t(), owner, num_classes)
        return torch.cat([cls_logits, scale * z @ n.t()], dim=-1)
