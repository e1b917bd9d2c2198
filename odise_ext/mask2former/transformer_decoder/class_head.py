"""Per-query classifiers of the masked-attention decoder.

The decoder calls its class head at every prediction step as::

    logits = class_head(query=decoder_norm(output),   # [B, Q, C]
                        mask_features=mask_features,  # [B, mask_dim, H, W]
                        mask_logits=mask_logits,      # [B, Q, H, W]
                        **class_inputs)               # the caller's, given to the decoder's forward
    # logits: [B, Q, K + 1], the last column is "no object"

so a head may use more than the query: ODISE's open-vocabulary head pools the mask features
under each predicted mask and compares the result with the text embeddings of the vocabulary
that its caller passes in ``class_inputs`` (the head holds no per-call state).
"""

import torch
from detectron2.config import configurable
from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["CLASS_HEAD_REGISTRY", "build_class_head", "LinearClassHead"]

CLASS_HEAD_REGISTRY = Registry("CLASS_HEAD")
CLASS_HEAD_REGISTRY.__doc__ = """
Per-query classifiers. A registered class is built as ``cls(cfg, **shared)`` (``shared``: models
the meta-architecture already built, e.g. ODISE's CLIP) and called as
``head(query=[B,Q,C], mask_features=[B,D,H,W], mask_logits=[B,Q,H,W], **class_inputs) -> [B,Q,K+1]``.
"""


def build_class_head(cfg, **shared) -> nn.Module:
    """Build ``cfg.MODEL.MASK_FORMER.CLASS_HEAD_NAME`` (``shared`` is passed on as keywords)."""
    return CLASS_HEAD_REGISTRY.get(cfg.MODEL.MASK_FORMER.CLASS_HEAD_NAME)(cfg, **shared)


@CLASS_HEAD_REGISTRY.register()
class LinearClassHead(nn.Linear):
    """Mask2Former's closed-vocabulary classifier: ``Linear(hidden_dim, num_classes + 1)``.

    It *is* an ``nn.Linear`` so that, as the decoder's ``class_embed``, its parameters keep
    Mask2Former's checkpoint names (``class_embed.weight`` / ``class_embed.bias``).
    """

    @configurable
    def __init__(self, *, hidden_dim: int, num_classes: int):
        super().__init__(hidden_dim, num_classes + 1)
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg):
        return {
            "hidden_dim": cfg.MODEL.MASK_FORMER.HIDDEN_DIM,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        }

    def forward(self, query: torch.Tensor, mask_features=None, mask_logits=None) -> torch.Tensor:
        """query: [B, Q, C] -> logits [B, Q, K + 1]; the mask arguments are not used."""
        return super().forward(query)
