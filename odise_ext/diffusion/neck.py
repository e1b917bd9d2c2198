"""``PromptedFPN``: detectron2's FPN neck around a prompted diffusion backbone, keeping the
backbone contract.

detectron2's ``FPN.forward(x)`` calls its bottom-up backbone with the images only and returns a
plain dict. Around a diffusion backbone the call must forward the prompt module's per-call
inputs, and the output must still carry the prompt the UNet saw and its attention maps, so that
a meta-architecture reads the same :class:`BackboneOutput` with or without a neck.

The top-down pathway is detectron2's (same modules, hence the same parameter names
``fpn_lateral<k>`` / ``fpn_output<k>`` / ``bottom_up.*``, and the same operations): the coarsest
input level through its lateral conv, then for every finer level its lateral conv plus the
nearest x2 upsampling of the coarser sum (halved with ``fuse_type="avg"``); each sum through its
output conv; then the optional top block.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.modeling.backbone.fpn import FPN

from .output import BackboneOutput
from .prompts import PromptModule

__all__ = ["PromptedFPN"]


class PromptedFPN(FPN):
    """detectron2 ``FPN`` whose ``bottom_up`` is a diffusion backbone (``forward(x,
    prompt_inputs)`` -> :class:`BackboneOutput`, ``prompt`` attribute). Same constructor as
    ``FPN``; outputs ``p<k>``."""

    @property
    def prompt(self) -> PromptModule:
        """The bottom-up backbone's prompt module."""
        return self.bottom_up.prompt

    def _top_down(self, bottom_up: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{"res<k>": [B, C_k, h_k, w_k]}`` -> ``{"p<k>": [B, out_channels, h_k, w_k]}``."""
        names = self.in_features  # finest first
        lateral = self.lateral_convs[0](bottom_up[names[-1]])  # convs are stored coarsest first
        results = [self.output_convs[0](lateral)]
        for i in range(1, len(names)):
            coarser = F.interpolate(lateral, scale_factor=2.0, mode="nearest")
            lateral = self.lateral_convs[i](bottom_up[names[-1 - i]]) + coarser
            if self._fuse_type == "avg":
                lateral /= 2
            results.insert(0, self.output_convs[i](lateral))
        if self.top_block is not None:
            top = self.top_block.in_feature
            source = bottom_up[top] if top in bottom_up else results[self._out_features.index(top)]
            results.extend(self.top_block(source))
        return dict(zip(self._out_features, results))

    def forward(self, x: torch.Tensor, prompt_inputs: Optional[dict] = None) -> BackboneOutput:
        """
        Args:
            x: [B, 3, H, W] images as the bottom-up backbone takes them.
            prompt_inputs: per-call inputs of the prompt module, passed to the bottom-up backbone.
        Returns:
            :class:`BackboneOutput` with ``{"p<k>": [B, out_channels, H / 2^k, W / 2^k]}`` and the
            bottom-up output's ``prompt`` and ``attention``.
        """
        bottom_up = self.bottom_up(x, prompt_inputs)
        return BackboneOutput(self._top_down(bottom_up), bottom_up.prompt, bottom_up.attention)
