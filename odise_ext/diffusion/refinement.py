"""The small helpers of :class:`~.feature_extractor.DiffusionFeatureExtractor`'s VPD /
Meta-Prompts options: the UNet mode (frozen or tuned), the refinement checks, and the per-pass
time vectors of Meta-Prompts' recurrent refinement.

Meta-Prompts draws each time vector t_i [1, T] from N(0, 1) and uses it in place of the output
of the UNet's time-embedding MLP during pass i (the time projection and MLP then do not matter).
"""
from contextlib import contextmanager
from typing import Callable, Dict

import torch
from torch import nn

from .frozen import FrozenModule
from .tuned import TunedModule

__all__ = ["UNET_MODES", "check_refinement", "loop_time_embedding", "make_loop_time_embeds", "resolve_unet_mode"]


def _keep_frozen(frozen: FrozenModule) -> FrozenModule:
    return frozen


def _tune(frozen: FrozenModule) -> TunedModule:
    return TunedModule(frozen.module, frozen.source)


# MODEL.DIFFUSION.UNET_MODE -> what to do with the (frozen-built) UNet.
UNET_MODES: Dict[str, Callable[[FrozenModule], nn.Module]] = {"frozen": _keep_frozen, "tuned": _tune}


def resolve_unet_mode(mode: str) -> Callable[[FrozenModule], nn.Module]:
    """The :data:`UNET_MODES` entry ``mode`` (an unknown mode is an error listing the known)."""
    if mode not in UNET_MODES:
        raise ValueError(f"MODEL.DIFFUSION.UNET_MODE={mode!r}; expected one of {sorted(UNET_MODES)}")
    return UNET_MODES[mode]


def check_refinement(unet: nn.Module, prompt: nn.Module, loops: int, noisy: bool, decode_unet_output: bool) -> None:
    """Refuse refinement settings that cannot run, before anything is computed.

    Args:
        unet: the diffusers UNet; prompt: the prompt module (its ``steps``).
        loops: UNet passes; noisy: the UNet input gets the fixed noise;
        decode_unet_output: the VAE decoder decodes the UNet's output.
    """
    if loops < 1:
        raise ValueError(f"MODEL.DIFFUSION.REFINE.LOOPS must be >= 1, got {loops}")
    if prompt.steps is not None and prompt.steps != loops:
        raise ValueError(f"{type(prompt).__name__} has {prompt.steps} prompt steps for MODEL.DIFFUSION.REFINE.LOOPS={loops}")
    if loops == 1:
        return
    if unet.config.out_channels != unet.config.in_channels:
        raise ValueError(
            f"refinement loops feed the UNet output ({unet.config.out_channels} channels) back "
            f"as its input ({unet.config.in_channels} channels); they must match"
        )
    if noisy:
        raise ValueError("refinement loops run on the clean latent; set MODEL.DIFFUSION.ADD_NOISE False")
    if decode_unet_output:
        raise ValueError("MODEL.DIFFUSION.VAE_DECODER_INPUT 'unet_output' needs MODEL.DIFFUSION.REFINE.LOOPS 1")


def make_loop_time_embeds(unet: nn.Module, loops: int) -> nn.ParameterList:
    """``loops`` learnable [1, T] time vectors (T: the UNet's time-embedding width), N(0, 1)."""
    dim = unet.time_embedding.linear_2.out_features
    return nn.ParameterList(nn.Parameter(torch.randn(1, dim)) for _ in range(loops))


@contextmanager
def loop_time_embedding(unet: nn.Module, vector: torch.Tensor):
    """While active, the UNet's time-embedding MLP returns ``vector`` [1, T] (batch-broadcast)."""

    def replace(module, args, out):
        return vector.to(out.dtype).expand(out.shape[0], -1)

    handle = unet.time_embedding.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()
