# Adapted from wl-zhao/VPD@3480e38129a5a47bb546e5b34b6f07e39b5f5a1f:vpd/models.py
"""VPD's text adapter: ``c + gamma * MLP(c)``."""
import torch
from torch import nn

__all__ = ["TextAdapter"]


class TextAdapter(nn.Module):
    """Refines prompt embeddings with a residual MLP scaled by a learnable per-channel ``gamma``.

    MLP = Linear(D, H) - GELU - Linear(H, D). With ``gamma`` initialised small (VPD: 1e-4) the
    adapter starts as (almost) the identity, so training starts from the CLIP embeddings.

    Args:
        dim: embedding width D.
        hidden_dim: MLP width H (0 = D).
        gamma_init: initial value of every entry of ``gamma`` [D].
    """

    def __init__(self, dim: int, hidden_dim: int = 0, gamma_init: float = 1e-4):
        super().__init__()
        if dim <= 0:
            raise ValueError(f"TextAdapter: dim must be > 0, got {dim}")
        hidden_dim = hidden_dim or dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), float(gamma_init)))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., D]."""
        if embeddings.shape[-1] != self.gamma.numel():
            raise ValueError(
                f"TextAdapter of width {self.gamma.numel()} got embeddings {tuple(embeddings.shape)}"
            )
        return embeddings + self.gamma * self.mlp(embeddings)
