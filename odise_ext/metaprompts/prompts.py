# Adapted from fudan-zvg/meta-prompts@a3e8583098c64c8854a85b260d80cb8335402469:depth/models_depth/model.py
# Adapted from fudan-zvg/meta-prompts@a3e8583098c64c8854a85b260d80cb8335402469:segmentation/models/model.py
"""Meta-Prompts' prompts: N learnable D-dim meta prompts, shared by every refinement step or one
set per step.

- shared (Meta-Prompts segmentation): one set p, optionally through one Linear-GELU-Linear
  (no residual, no scale); the context of every UNet pass is MLP(p). Parameters ``prompts``,
  ``mlp``.
- per step (Meta-Prompts depth, ``MODEL.DIFFUSION.REFINE.LOOPS`` UNet passes): step i has its own p_i
  and its own MLP_i, context_i = MLP_i(p_i). Parameters ``step_prompts.<i>``, ``step_mlps.<i>``.

The two layouts keep the parameter names the released checkpoints convert to. The last step's
context is the one the re-arrangement and the depth head compare the features with.
"""
from typing import Optional

import torch
from detectron2.config import configurable
from torch import nn

from ..diffusion.prompts import PROMPT_REGISTRY, PromptModule, PromptOutput

__all__ = ["MetaPrompts"]


def _mlp(dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))


@PROMPT_REGISTRY.register()
class MetaPrompts(PromptModule):
    """Meta prompts: context [N_img, N, D] per UNet pass (see the module docstring)."""

    @configurable
    def __init__(self, *, num_prompts: int, dim: int, use_mlp: bool, steps: Optional[int] = None):
        """
        Args:
            num_prompts: N prompts (per step).
            dim: D, the UNet's cross-attention width.
            use_mlp: pass the prompts through Linear-GELU-Linear (per step with ``steps``).
            steps: None = one set shared by every pass; k >= 1 = one set per refinement step
                (the extractor must then run k passes).
        """
        super().__init__()
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be > 0, got {num_prompts}")
        if steps is not None and steps < 1:
            raise ValueError(f"MetaPrompts needs steps >= 1 (or None: shared), got {steps}")
        self.num_tokens, self.token_dim, self.steps = int(num_prompts), int(dim), steps
        # Meta-Prompts initialises the prompts from N(0, 1).
        if steps is None:
            self.prompts = nn.Parameter(torch.randn(num_prompts, dim))
            self.mlp = _mlp(dim) if use_mlp else None
        else:
            self.step_prompts = nn.ParameterList(nn.Parameter(torch.randn(num_prompts, dim)) for _ in range(steps))
            self.step_mlps = nn.ModuleList(_mlp(dim) for _ in range(steps)) if use_mlp else None

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        p = cfg.MODEL.META_PROMPTS
        return {
            "num_prompts": p.NUM_PROMPTS,
            "dim": text_encoder.config.hidden_size,  # = the UNet cross-attention width
            "use_mlp": p.MLP,
            "steps": cfg.MODEL.DIFFUSION.REFINE.LOOPS if p.PER_STEP else None,
        }

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """[N_img, 3, R, R'] -> context [N_img, N, D] (the last step's); per step also
        ``step_contexts``."""
        n = images.shape[0]
        if self.steps is None:
            prompts = self.prompts if self.mlp is None else self.mlp(self.prompts)
            return PromptOutput(context=prompts.unsqueeze(0).expand(n, -1, -1))
        contexts = []
        for i, prompts in enumerate(self.step_prompts):
            if self.step_mlps is not None:
                prompts = self.step_mlps[i](prompts)
            contexts.append(prompts.unsqueeze(0).expand(n, -1, -1))
        return PromptOutput(context=contexts[-1], step_contexts=contexts)
