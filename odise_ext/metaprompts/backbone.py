"""``MetaPromptsBackbone``: VPD's feature levels re-arranged against Meta-Prompts' meta prompts.

The levels of :class:`~odise_ext.vpd.backbone.VPDBackbone` (taps concatenated per stride) go
through :class:`PromptRearrangement` with the context the UNet saw (the last refinement step's
prompts): every level is upsampled by ``UPSAMPLE``, projected to the prompt width and compared
with each prompt, so level s becomes ``res<log2(s / UPSAMPLE)>`` with one channel per prompt.
The re-arrangement's parameters are ``backbone.rearrange.projections.<i>.*`` (the released
Meta-Prompts segmentation checkpoints' ``upconv<i+1>`` convert there).
"""
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from ..diffusion.output import BackboneOutput
from ..vpd.backbone import VPDBackbone, level_name
from .rearrange import PromptRearrangement

__all__ = ["MetaPromptsBackbone"]


@BACKBONE_REGISTRY.register()
class MetaPromptsBackbone(VPDBackbone):
    """Input as :class:`VPDBackbone`. Output: :class:`BackboneOutput` with
    ``{"res<k>": [B, N, H / 2^k, W / 2^k]}`` (N = the prompt module's ``num_tokens``)."""

    @configurable
    def __init__(self, *, rearrange_upsample: int, rearrange_gn_groups: int, out_features, **kwargs):
        """
        Args:
            rearrange_upsample: upsampling factor before the projection (output strides are the
                level strides divided by it).
            rearrange_gn_groups: GroupNorm groups of the projections.
            out_features: subset of the re-arranged ``res<k>`` names.
            kwargs: see :class:`VPDBackbone` (its ``out_features`` are not used).
        """
        super().__init__(out_features=(), **kwargs)
        prompt = self.prompt
        if prompt.num_tokens is None or prompt.token_dim is None:
            raise ValueError(
                f"{type(prompt).__name__} declares no fixed `num_tokens` / `token_dim`; the re-arrangement "
                "needs a prompt module with a fixed context shape (MetaPrompts)"
            )
        self.rearrange = PromptRearrangement(self.level_channels, prompt.token_dim, rearrange_upsample, rearrange_gn_groups)
        upsample = self.rearrange.upsample
        self._set_outputs(out_features, {s // upsample: prompt.num_tokens for s in self.level_strides})

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None):
        a = cfg.MODEL.META_PROMPTS.REARRANGE
        return {
            **super().from_config(cfg, input_shape),
            "rearrange_upsample": a.UPSAMPLE,
            "rearrange_gn_groups": a.GN_GROUPS,
        }

    def forward(self, x: torch.Tensor, prompt_inputs: Optional[dict] = None) -> BackboneOutput:
        """[B, 3, H, W] in [0, 1] -> :class:`BackboneOutput` (``{"res<k>": [B, N, H / 2^k, W / 2^k]}``)."""
        maps, ex = self.levels(x, prompt_inputs)
        maps = self.rearrange(maps, ex.prompt.context)
        upsample = self.rearrange.upsample
        named = {level_name(s // upsample): m for s, m in zip(self.level_strides, maps)}
        return BackboneOutput({f: named[f] for f in self._out_features}, ex.prompt, ex.attention)
