"""EIPA: Extractive-Injective Phrase Adapters beside the frozen UNet.

An adapter sits beside one UNet block. It reads the block's input image features, lets the
current phrase prompts attend to them (*extract*; the attention of each phrase is restricted to
its foreground in the diffusion mask head so far), refines the phrases by self-attention and an
FFN at a reduced width, and writes a gated update back into the prompts, which become the
cross-attention context of this block and of the following ones (*inject*).

Its cross-attention scores are its mask head (mask logits, one map per phrase) and a linear
classifier on its phrase state gives the phrase category: each adapter is supervised with a
mask-classification loss.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from ..mask2former.transformer_decoder.layers import FFNLayer, SelfAttentionLayer
from ..mask2former.transformer_decoder.position_encoding import PositionEmbeddingSine
from .attention import ScoredCrossAttention

__all__ = ["AdapterOutput", "PhraseAdapter", "adapter_key", "build_adapters", "unet_block_layout"]


@dataclass
class AdapterOutput:
    """What one adapter produced in a forward pass (N windows, P phrase slots).

    Attributes:
        block: the UNet block it sits beside, e.g. "up_blocks.2".
        phrases: [N, P, dim] the adapter's refined phrase state (MLMA's phrase features).
        prompts: [N, P, D] the prompts it produced (the first P tokens of the block's context).
        mask_logits: [N, P, h, w] its mask head, on the block's input grid.
        class_logits: [N, P, K + 1] its phrase-category head.
    """

    block: str
    phrases: torch.Tensor
    prompts: torch.Tensor
    mask_logits: torch.Tensor
    class_logits: torch.Tensor


def unet_block_layout(unet_config) -> Dict[str, Dict[str, object]]:
    """Input channels and cross-attention presence of every UNet block, from the loaded model.

    Follows diffusers' ``UNet2DConditionModel`` layout: down block i outputs
    ``block_out_channels[i]``, the mid block keeps the last width, up block i outputs the
    reversed list's i-th width; a block's input is the previous block's output (``conv_in``
    gives the first width).

    Args:
        unet_config: the built UNet's ``config`` (a diffusers folder's own ``config.json``,
            or the architecture ``MODEL.DIFFUSION.UNET_CONFIG`` was turned into).
    Returns:
        ``{block name: {"in_channels": int, "cross_attention": bool}}`` in execution order.
    """
    widths = list(unet_config.block_out_channels)
    layout, prev = {}, widths[0]
    for i, kind in enumerate(unet_config.down_block_types):
        layout[f"down_blocks.{i}"] = {"in_channels": prev, "cross_attention": "CrossAttn" in kind}
        prev = widths[i]
    layout["mid_block"] = {"in_channels": prev, "cross_attention": True}
    for i, (kind, width) in enumerate(zip(unet_config.up_block_types, reversed(widths))):
        layout[f"up_blocks.{i}"] = {"in_channels": prev, "cross_attention": "CrossAttn" in kind}
        prev = width
    return layout


class PhraseAdapter(nn.Module):
    """One EIPA block (post-norm transformer layer at width ``dim``)."""

    def __init__(
        self,
        *,
        image_channels: int,
        context_dim: int,
        dim: int,
        num_heads: int,
        dim_feedforward: int,
        num_classes: int,
        gate_init: float,
    ):
        """
        Args:
            image_channels: channels of the UNet block's input features.
            context_dim: width D of the UNet prompts (cross-attention dim).
            dim: the adapter's reduced width.
            num_heads: attention heads.
            dim_feedforward: FFN hidden width.
            num_classes: K phrase categories (the class head predicts K + 1).
            gate_init: initial value of the per-channel gate on the prompt update.
        """
        super().__init__()
        if dim % 2:
            raise ValueError(f"EIPA width must be even (sine positions), got {dim}")
        self.image_channels = image_channels
        self.phrase_in = nn.Sequential(nn.Linear(context_dim, dim), nn.LayerNorm(dim))
        self.image_in = nn.Sequential(nn.Linear(image_channels, dim), nn.LayerNorm(dim))
        self.pe_layer = PositionEmbeddingSine(dim // 2, normalize=True)
        self.cross_attn = ScoredCrossAttention(dim, num_heads)
        self.cross_norm = nn.LayerNorm(dim)
        self.self_attn = SelfAttentionLayer(dim, num_heads)
        self.ffn = FFNLayer(dim, dim_feedforward)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        # The scores are centred by nothing else; a learnable offset sets the 0.5 level of the mask.
        self.mask_bias = nn.Parameter(torch.zeros(1))
        self.phrase_out = nn.Linear(dim, context_dim)
        self.gate = nn.Parameter(torch.full((context_dim,), float(gate_init)))

    def forward(
        self,
        prompts: torch.Tensor,
        valid: torch.Tensor,
        image: torch.Tensor,
        foreground: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            prompts: [N, P, D] current phrase prompts (padding slots are ignored and kept).
            valid: [N, P] bool.
            image: [N, C, h, w] the UNet block's input features.
            foreground: optional [N, P, h * w] bool attention restriction.
        Returns:
            dict with ``prompts`` [N, P, D] (updated), ``phrases`` [N, P, dim],
            ``mask_logits`` [N, P, h, w], ``class_logits`` [N, P, K + 1].
        """
        if image.shape[1] != self.image_channels:
            raise ValueError(
                f"the UNet block's input has {image.shape[1]} channels but the adapter was built for "
                f"{self.image_channels} (built from another UNet)"
            )
        n, _, h, w = image.shape
        image = image.float()
        x = self.phrase_in(prompts)
        pixels = self.image_in(image.flatten(2).transpose(1, 2))  # [N, hw, dim]
        pos = self.pe_layer(image[:, :1]).flatten(2).transpose(1, 2)
        update, scores = self.cross_attn(x, pixels, pos, foreground)
        x = self.cross_norm(x + update)
        x = self.self_attn(x, key_padding_mask=~valid)
        x = self.ffn(x)
        keep = valid[..., None].to(prompts.dtype)
        return {
            "prompts": prompts + keep * self.gate * self.phrase_out(x),
            "phrases": x,
            "mask_logits": scores.view(n, -1, h, w) + self.mask_bias,
            "class_logits": self.class_embed(x),
        }


def build_adapters(
    layout: Dict[str, Dict[str, object]],
    blocks: Sequence[str],
    **kwargs,
) -> Dict[str, PhraseAdapter]:
    """One :class:`PhraseAdapter` per UNet block name.

    Raises:
        ValueError: an unknown block, or a block without cross-attention (its prompt is unused).
    """
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"MODEL.PNG.EIPA.BLOCKS lists a block twice: {list(blocks)}")
    adapters: Dict[str, PhraseAdapter] = {}
    for block in blocks:
        if block not in layout:
            raise ValueError(f"MODEL.PNG.EIPA.BLOCKS: unknown UNet block {block!r}; blocks: {list(layout)}")
        if not layout[block]["cross_attention"]:
            raise ValueError(f"MODEL.PNG.EIPA.BLOCKS: {block!r} has no cross-attention, so no prompt to adapt")
        adapters[block] = PhraseAdapter(image_channels=layout[block]["in_channels"], **kwargs)
    return adapters


def adapter_key(block: str) -> str:
    """ModuleDict key of a block's adapter ("up_blocks.2" -> "up_blocks_2")."""
    return block.replace(".", "_")
