# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py
"""Mask2Former's multi-scale masked-attention transformer decoder (Cheng et al. 2022).

Queries attend, layer by layer and round-robin over the pixel decoder's levels (coarsest
first), only to the pixels inside the mask they predicted at the previous step. Every step
(the learnable queries themselves, then each layer) produces a prediction; all but the last are
returned as ``aux_outputs`` for deep supervision.

Module and parameter names follow Mask2Former (``class_embed`` is the class head) so that its
checkpoints load.
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d
from detectron2.utils.registry import Registry
from fvcore.nn import weight_init
from torch import nn

from .class_head import build_class_head
from .layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from .position_encoding import PositionEmbeddingSine

__all__ = ["TRANSFORMER_DECODER_REGISTRY", "build_transformer_decoder", "MultiScaleMaskedTransformerDecoder"]

TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_DECODER")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Query decoders of mask-classification heads. A registered class is built as
``cls(cfg, in_channels=..., mask_classification=..., class_head=...)``.
"""


def build_transformer_decoder(
    cfg, in_channels: int, mask_classification: bool = True, class_head: Optional[nn.Module] = None
):
    """Build ``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``.

    Args:
        in_channels: width of the pixel decoder's multi-scale features.
        mask_classification: predict a class per query (False: masks only).
        class_head: classifier to use instead of ``build_class_head(cfg)`` (e.g. an
            open-vocabulary head sharing CLIP with its meta-architecture).
    """
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    return TRANSFORMER_DECODER_REGISTRY.get(name)(
        cfg, in_channels=in_channels, mask_classification=mask_classification, class_head=class_head
    )


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Masked-attention decoder over L levels of pixel features.

    ``forward`` returns a dict for the last prediction::

        pred_masks      [B, Q, H, W]     mask logits on the mask-feature grid
        pred_logits     [B, Q, K + 1]    only with mask_classification
        query_features  [B, Q, C]        decoder_norm(queries), what the class head saw
        aux_outputs     list of dicts with the same keys for the earlier predictions
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        mask_classification: bool,
        class_head: Optional[nn.Module],
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
        num_feature_levels: int,
        dropout: float = 0.0,
    ):
        """
        Args:
            in_channels: width of the multi-scale features.
            mask_classification: whether ``class_head`` is used (it must then be given).
            class_head: called as ``class_head(query=, mask_features=, mask_logits=)``.
            num_queries: learnable queries; 0 means queries are always passed to ``forward``.
            dec_layers: masked-attention layers (``dec_layers + 1`` predictions).
            num_feature_levels: number of pixel-decoder levels cycled through (with fewer
                layers than levels, the finest levels are not used).
        """
        super().__init__()
        if mask_classification and class_head is None:
            raise ValueError("mask_classification=True needs a class_head")
        if not mask_classification and class_head is not None:
            raise ValueError("a class_head was given but mask_classification=False")
        if dec_layers < 1 or num_feature_levels < 1:
            raise ValueError(
                f"need dec_layers >= 1 and num_feature_levels >= 1, got {dec_layers}, {num_feature_levels}"
            )
        self.mask_classification = mask_classification
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_queries = num_queries
        self.num_feature_levels = num_feature_levels
        self.hidden_dim = hidden_dim

        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads, dropout=dropout, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads, dropout=dropout, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward, dropout=dropout, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        if num_queries > 0:
            self.query_feat = nn.Embedding(num_queries, hidden_dim)  # content
            self.query_embed = nn.Embedding(num_queries, hidden_dim)  # positional
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = Conv2d(in_channels, hidden_dim, kernel_size=1)
                weight_init.c2_xavier_fill(proj)
            else:
                proj = nn.Identity()
            self.input_proj.append(proj)

        self.class_embed = class_head
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg, in_channels, mask_classification=True, class_head=None):
        mf = cfg.MODEL.MASK_FORMER
        if mask_classification and class_head is None:
            class_head = build_class_head(cfg)
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "class_head": class_head,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            "dec_layers": mf.NUM_DECODER_LAYERS,
            "pre_norm": mf.PRE_NORM,
            "mask_dim": mf.MASK_DIM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            # one decoder level per deformable-encoder level of the pixel decoder
            "num_feature_levels": len(mf.PIXEL_DECODER.TRANSFORMER_IN_FEATURES),
            "dropout": mf.DROPOUT,
        }

    def forward(
        self,
        x: List[torch.Tensor],
        mask_features: torch.Tensor,
        *,
        queries: Optional[torch.Tensor] = None,
        query_pos: Optional[torch.Tensor] = None,
        query_padding_mask: Optional[torch.Tensor] = None,
        class_inputs: Optional[Dict[str, object]] = None,
    ) -> Dict[str, object]:
        """
        Args:
            x: ``num_feature_levels`` maps [B, in_channels, H_l, W_l], coarsest first.
            mask_features: [B, mask_dim, H, W].
            queries: optional [B, Q, hidden_dim] initial query content, replacing the learnable
                queries (e.g. one query per noun phrase); needs ``num_queries == 0``.
            query_pos: optional [B, Q, hidden_dim] positional embedding of ``queries``.
            query_padding_mask: optional [B, Q] bool, True at padding queries (not attended
                by the other queries in self-attention).
            class_inputs: extra keyword arguments of every class-head call of this forward
                (e.g. ODISE's vocabulary embedding), or None.
        Returns:
            the dict described in the class docstring.
        """
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature levels, got {len(x)}")
        bs = mask_features.shape[0]
        src, pos, size_list = [], [], []
        for i, feat in enumerate(x):
            size_list.append(tuple(feat.shape[-2:]))
            pos.append(self.pe_layer(feat).flatten(2).transpose(1, 2))
            proj = self.input_proj[i](feat).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(proj.transpose(1, 2))  # [B, HW, C]

        output, query_pos = self._initial_queries(bs, queries, query_pos)
        if query_padding_mask is not None and query_padding_mask.shape != output.shape[:2]:
            raise ValueError(
                f"query_padding_mask must be {tuple(output.shape[:2])}, got {tuple(query_padding_mask.shape)}"
            )

        predictions = []
        class_inputs = class_inputs or {}
        pred, attn_mask = self.forward_prediction_heads(output, mask_features, size_list[0], class_inputs)
        predictions.append(pred)
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            output = self.transformer_cross_attention_layers[i](
                output, src[level], attn_mask=attn_mask, pos=pos[level], query_pos=query_pos
            )
            output = self.transformer_self_attention_layers[i](
                output, query_pos=query_pos, key_padding_mask=query_padding_mask
            )
            output = self.transformer_ffn_layers[i](output)
            is_last = i == self.num_layers - 1
            next_size = None if is_last else size_list[(i + 1) % self.num_feature_levels]
            pred, attn_mask = self.forward_prediction_heads(output, mask_features, next_size, class_inputs)
            predictions.append(pred)

        out = dict(predictions[-1])
        out["aux_outputs"] = predictions[:-1]
        return out

    def _initial_queries(self, bs, queries, query_pos) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if queries is None:
            if self.num_queries == 0:
                raise ValueError("this decoder has no learnable queries (num_queries=0): pass `queries`")
            if query_pos is not None:
                raise ValueError("query_pos is only meaningful together with `queries`")
            return (
                self.query_feat.weight[None].expand(bs, -1, -1),
                self.query_embed.weight[None].expand(bs, -1, -1),
            )
        if self.num_queries > 0:
            raise ValueError(
                f"queries were passed but the decoder has {self.num_queries} learnable queries, "
                "which would be "
                "unused; build it with NUM_OBJECT_QUERIES 0"
            )
        if queries.dim() != 3 or queries.shape[0] != bs or queries.shape[2] != self.hidden_dim:
            raise ValueError(f"queries must be [{bs}, Q, {self.hidden_dim}], got {tuple(queries.shape)}")
        if query_pos is not None and query_pos.shape != queries.shape:
            raise ValueError(f"query_pos {tuple(query_pos.shape)} must match queries {tuple(queries.shape)}")
        return queries, query_pos

    def forward_prediction_heads(
        self, output: torch.Tensor, mask_features: torch.Tensor, attn_size: Optional[Tuple[int, int]],
        class_inputs: Optional[Dict[str, object]] = None,
    ) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """Predict masks (and classes) from the current queries.

        Args:
            output: [B, Q, C] queries; mask_features: [B, mask_dim, H, W].
            attn_size: (h, w) of the level the next layer attends to, or None.
            class_inputs: extra keyword arguments of the class head, or None.
        Returns:
            prediction dict, and the next layer's attention mask [B, 1, Q, h*w] (bool, True =
            may attend) or None.
        """
        decoder_output = self.decoder_norm(output)
        mask_embed = self.mask_embed(decoder_output)
        outputs_mask = torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)
        pred = {"pred_masks": outputs_mask, "query_features": decoder_output}
        if self.class_embed is not None:
            pred["pred_logits"] = self.class_embed(
                query=decoder_output, mask_features=mask_features, mask_logits=outputs_mask, **(class_inputs or {})
            )
        attn_mask = None if attn_size is None else self.attention_mask(outputs_mask, attn_size)
        return pred, attn_mask

    @staticmethod
    def attention_mask(mask_logits: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """Pixels each query may attend to at the next layer: its predicted mask (prob >= 0.5)
        resized to the level's size. No gradient flows through the mask. A query whose row is
        empty attends everywhere (enforced in the attention itself).

        Args:
            mask_logits: [B, Q, H, W].
        Returns:
            [B, 1, Q, h * w] bool, broadcast over heads.
        """
        resized = F.interpolate(mask_logits.detach(), size=size, mode="bilinear", align_corners=False)
        return (resized.sigmoid() >= 0.5).flatten(2).unsqueeze(1)
