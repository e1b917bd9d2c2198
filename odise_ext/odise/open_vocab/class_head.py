# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/odise.py
"""ODISE's open-vocabulary class head, plugged into the masked-attention decoder."""
from typing import NamedTuple, Sequence

import torch
from detectron2.config import configurable
from torch import nn

from ...mask2former.transformer_decoder.class_head import CLASS_HEAD_REGISTRY
from .heads import CategoryHead, MaskPooledEmbedding

__all__ = ["OpenVocabClassHead", "VocabularyEmbedding"]


class VocabularyEmbedding(NamedTuple):
    """The classes to score, as the class head takes them: text_embed [S, clip_dim] CLIP text
    embeddings of every synonym, owner [S] the class index of each, num_classes K."""

    text_embed: torch.Tensor
    owner: Sequence[int]
    num_classes: int

    def check(self) -> "VocabularyEmbedding":
        if self.text_embed.shape[0] != len(self.owner):
            raise ValueError(f"{self.text_embed.shape[0]} text embeddings for {len(self.owner)} synonyms")
        return self


@CLASS_HEAD_REGISTRY.register()
class OpenVocabClassHead(nn.Module):
    """Mask embedding (hard mask pooling + query) scored against a vocabulary.

    The vocabulary is data, an argument of every call: the meta-architecture passes the CLIP text
    embeddings of the classes to recognise (training classes in training, any list at test time)
    to the decoder as ``class_inputs={"vocabulary": VocabularyEmbedding(...)}``; the head keeps
    no vocabulary between calls. Built as ``OpenVocabClassHead(cfg, clip=...)`` with the shared CLIP,
    which gives the null (no-object) embedding's initial value and the text width.
    """

    @configurable
    def __init__(self, *, mask_dim, hidden_dim, embed_dim, clip_dim, null_init=None):
        super().__init__()
        self.post_mask_embed = MaskPooledEmbedding(mask_dim=mask_dim, hidden_dim=hidden_dim, embed_dim=embed_dim)
        self.category_head = CategoryHead(clip_dim=clip_dim, embed_dim=embed_dim, null_init=null_init)

    @classmethod
    def from_config(cls, cfg, clip):
        with torch.no_grad():
            null_init = clip.encode_text([""]).float()  # [1, clip_dim]
        return {
            "mask_dim": cfg.MODEL.MASK_FORMER.MASK_DIM,
            "hidden_dim": cfg.MODEL.MASK_FORMER.HIDDEN_DIM,
            "embed_dim": cfg.MODEL.ODISE.EMBED_DIM,
            "clip_dim": null_init.shape[-1],
            "null_init": null_init,
        }

    def project_text(self, text_embed):
        """[S, clip_dim] CLIP text embeddings -> [S, E] in the mask-embedding space."""
        return self.category_head.text_proj(text_embed)

    def logit_scale(self):
        """The learnable temperature of the mask-text similarities (a scalar tensor)."""
        return self.post_mask_embed.scale()

    def embed(self, query, mask_features, mask_logits):
        """[B, Q, E] mask embeddings (used by the caption grounding loss too)."""
        return self.post_mask_embed(query, mask_features, mask_logits)

    def forward(self, query, mask_features, mask_logits, *, vocabulary: VocabularyEmbedding):
        """query [B,Q,C], mask_features [B,M,H,W], mask_logits [B,Q,H,W], the K classes of
        ``vocabulary`` -> logits [B,Q,K+1]."""
        embed = self.embed(query, mask_features, mask_logits)
        return self.category_head(embed, *vocabulary, self.post_mask_embed.scale())
