# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/odise.py
"""ODISE's open-vocabulary class head, plugged into the masked-attention decoder."""
import torch
from detectron2.config import configurable
from torch import nn

from ...mask2former.transformer_decoder.class_head import CLASS_HEAD_REGISTRY
from .heads import CategoryHead, MaskPooledEmbedding

__all__ = ["OpenVocabClassHead"]


@CLASS_HEAD_REGISTRY.register()
class OpenVocabClassHead(nn.Module):
    """Mask embedding (hard mask pooling + query) scored against the current vocabulary.

    The vocabulary is data: the meta-architecture calls :meth:`set_vocabulary` with the CLIP text
    embeddings of the classes to recognise (training classes in training, any list at test time)
    before running the decoder. Built as ``OpenVocabClassHead(cfg, clip=...)`` with the shared CLIP,
    which gives the null (no-object) embedding's initial value and the text width.
    """

    @configurable
    def __init__(self, *, mask_dim, hidden_dim, embed_dim, clip_dim, null_init=None):
        super().__init__()
        self.post_mask_embed = MaskPooledEmbedding(mask_dim=mask_dim, hidden_dim=hidden_dim, embed_dim=embed_dim)
        self.category_head = CategoryHead(clip_dim=clip_dim, embed_dim=embed_dim, null_init=null_init)
        self._vocab = None

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

    def set_vocabulary(self, text_embed, owner, num_classes):
        """text_embed: [S, clip_dim] synonym embeddings; owner: [S] class of each; K classes."""
        if text_embed.shape[0] != len(owner):
            raise ValueError(f"{text_embed.shape[0]} text embeddings for {len(owner)} synonyms")
        self._vocab = (text_embed, owner, num_classes)

    def project_text(self, text_embed):
        """[S, clip_dim] CLIP text embeddings -> [S, E] in the mask-embedding space."""
        return self.category_head.text_proj(text_embed)

    def logit_scale(self):
        """The learnable temperature of the mask-text similarities (a scalar tensor)."""
        return self.post_mask_embed.scale()

    def embed(self, query, mask_features, mask_logits):
        """[B, Q, E] mask embeddings (used by the caption grounding loss too)."""
        return self.post_mask_embed(query, mask_features, mask_logits)

    def forward(self, query, mask_features, mask_logits):
        """query [B,Q,C], mask_features [B,M,H,W], mask_logits [B,Q,H,W] -> logits [B,Q,K+1]."""
        if self._vocab is None:
            raise RuntimeError("OpenVocabClassHead: no vocabulary set (call set_vocabulary first)")
        embed = self.embed(query, mask_features, mask_logits)
        return self.category_head(embed, *self._vocab, self.post_mask_embed.scale())
