"""``BackboneOutput``: what one call of a diffusion backbone returns, for every task."""
from typing import Dict, Optional, Sequence

import torch

from .cross_attention import AttentionMap
from .prompts.base import PromptOutput

__all__ = ["BackboneOutput"]


class BackboneOutput(dict):
    """Features by level, plus what the prompted UNet saw and attended to.

    As a dict it is the detectron2 backbone contract (``{"res<k>": [B, C_k, H / 2^k, W / 2^k]}``,
    what heads and necks index), so any detectron2 head reads it unchanged. Attributes:

    - ``prompt``: the :class:`PromptOutput` the UNet was conditioned on (``context`` [N, L, D],
      ``time_embed_delta``, the prompt module's per-call ``state``), N = images, or windows for a
      windowed backbone; None when no tap needs the UNet.
    - ``attention``: the cross-attention maps of the (last) UNet pass in execution order
      (:class:`AttentionMap`, ``probs`` [N, h, w, L]); empty unless the backbone records them.
    """

    def __init__(
        self,
        features: Dict[str, torch.Tensor],
        prompt: Optional[PromptOutput] = None,
        attention: Sequence[AttentionMap] = (),
    ):
        super().__init__(features)
        self.prompt = prompt
        self.attention = list(attention)
