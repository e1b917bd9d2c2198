"""Meta-Prompts depth's prompts: one set of meta prompts and one adapter MLP per refinement step.

Step i of the recurrent refinement (``MODEL.DIFFUSION.REFINE.LOOPS`` UNet passes) uses its own N
learnable D-dim prompts p_i, passed through its own Linear-GELU-Linear (no residual, no scale):
context_i = MLP_i(p_i). The last step's context is also the one the depth head's re-arrangement
compares the features with. (:class:`MetaPrompts` is the variant with one set for every step.)
"""
import torch
from detectron2.config import configurable
from torch import nn

from ..diffusion.prompts import PROMPT_REGISTRY, PromptModule, PromptOutput, StepContexts

__all__ = ["MetaPrompts", "StepMetaPrompts"]


@PROMPT_REGISTRY.register()
class StepMetaPrompts(PromptModule):
    """Per-step meta prompts: context of step i [N_img, N, D] = MLP_i(p_i)."""

    @configurable
    def __init__(self, *, steps: int, num_prompts: int, dim: int, use_mlp: bool):
        """
        Args:
            steps: number of refinement steps (UNet passes).
            num_prompts: N prompts per step.
            dim: D, the UNet's cross-attention width.
            use_mlp: pass each step's prompts through its own Linear-GELU-Linear.
        """
        super().__init__()
        if steps < 1 or num_prompts < 1:
            raise ValueError(f"StepMetaPrompts needs steps >= 1 and num_prompts >= 1, got {steps}, {num_prompts}")
        # Meta-Prompts initialises the prompts from N(0, 1).
        self.step_prompts = nn.ParameterList(nn.Parameter(torch.randn(num_prompts, dim)) for _ in range(steps))
        self.step_mlps = (
            nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)) for _ in range(steps))
            if use_mlp
            else None
        )

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        p = cfg.MODEL.META_PROMPTS
        return {
            "steps": cfg.MODEL.DIFFUSION.REFINE.LOOPS,
            "num_prompts": p.NUM_PROMPTS,
            "dim": text_encoder.config.hidden_size,  # = the UNet cross-attention width
            "use_mlp": p.MLP,
        }

    @property
    def num_tokens(self) -> int:
        return self.step_prompts[0].shape[0]

    @property
    def steps(self) -> int:
        return len(self.step_prompts)

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """[N_img, 3, R, R'] -> context [N_img, N, D] of the last step; state: every step's."""
        contexts = []
        for i, prompts in enumerate(self.step_prompts):
            if self.step_mlps is not None:
                prompts = self.step_mlps[i](prompts)
            contexts.append(prompts.unsqueeze(0).expand(images.shape[0], -1, -1))
        return PromptOutput(context=contexts[-1], state=StepContexts(contexts))


@PROMPT_REGISTRY.register()
class MetaPrompts(PromptModule):
    """Meta prompts: N learnable D-dim embeddings are the cross-attention context [N_img, N, D]."""

    @configurable
    def __init__(self, *, num_prompts: int, dim: int, use_mlp: bool):
        """
        Args:
            num_prompts: N.
            dim: D, the UNet's cross-attention width.
            use_mlp: pass the prompts through Linear-GELU-Linear first (Meta-Prompts depth).
        """
        super().__init__()
        if num_prompts <= 0:
            raise ValueError(f"num_prompts must be > 0, got {num_prompts}")
        # Meta-Prompts initialises the prompts from N(0, 1).
        self.prompts = nn.Parameter(torch.randn(num_prompts, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)) if use_mlp else None

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        p = cfg.MODEL.META_PROMPTS
        return {
            "num_prompts": p.NUM_PROMPTS,
            "dim": text_encoder.config.hidden_size,  # = the UNet cross-attention width
            "use_mlp": p.MLP,
        }

    @property
    def num_tokens(self) -> int:
        return self.prompts.shape[0]

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """[N_img, 3, R, R'] -> context [N_img, N, D]."""
        prompts = self.prompts if self.mlp is None else self.mlp(self.prompts)
        return PromptOutput(context=prompts.unsqueeze(0).expand(images.shape[0], -1, -1))
