"""Stable Diffusion's noise schedule and ODISE's fixed noise."""
import torch

__all__ = ["alphas_cumprod", "fixed_noise"]


def alphas_cumprod(beta_start: float, beta_end: float, num_steps: int) -> torch.Tensor:
    """SD's "scaled_linear" schedule: cumprod(1 - linspace(sqrt(b0), sqrt(b1), T) ** 2), float64."""
    betas = torch.linspace(
        beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64, device="cpu"
    ) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def fixed_noise(channels: int, size: int, seed: int) -> torch.Tensor:
    """ODISE's shared noise: ``randn(1, C, size, size)`` from ``Generator().manual_seed(seed)``."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(1, channels, size, size, generator=generator, device="cpu")
