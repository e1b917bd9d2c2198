"""The fast paths of ``MODEL.SPEED`` applied to frozen networks (diffusers UNet / VAE, CLIP).

- ``SDPA``: diffusers' ``AttnProcessor2_0`` (``F.scaled_dot_product_attention``) or the explicit
  ``AttnProcessor`` reference on every attention layer of a diffusers model.
- ``CHANNELS_LAST``: weights of 4-D convolutions in channels_last memory format.
- ``COMPILE``: ``torch.compile`` of the ``forward`` of each resnet / transformer block. Blocks,
  not whole networks: the feature taps are forward hooks installed per call, and hooks run
  outside a block's compiled ``forward``, so taps, early stops and prompt callbacks keep working
  and no call recompiles. dynamo's recompile limits are raised only while a compiled block
  runs (``torch._dynamo.config.patch`` around each call), never for the whole process.
"""
import functools

import torch
from torch import nn

__all__ = ["apply_speed_options", "compile_blocks"]

# Block classes whose forward is compiled: the repeated units of SD's UNet/VAE and of CLIP.
_COMPILED_BLOCKS = (
    "ResnetBlock2D",
    "Transformer2DModel",
    "Attention",
    "ResidualAttentionBlock",
    "CLIPEncoderLayer",
)
# Every distinct block configuration (channels, resolution) is one compiled graph of the same
# code object; SD's UNet + VAE have a few dozen, more than dynamo's default of 8.
_RECOMPILE_LIMIT = 128


def _recompile_limits() -> dict:
    """dynamo's recompile limits raised to ours (the names changed across releases:
    cache_size_limit -> recompile_limit; the older name is an alias where both exist)."""
    import torch._dynamo

    config, limits = torch._dynamo.config, {}
    for names, floor in ((("recompile_limit", "cache_size_limit"), _RECOMPILE_LIMIT),
                         (("accumulated_recompile_limit", "accumulated_cache_size_limit"), 4 * _RECOMPILE_LIMIT)):
        name = next((n for n in names if hasattr(config, n)), None)
        if name is not None:
            limits[name] = max(getattr(config, name), floor)
    return limits


def _compiled(forward, backend: str, limits: dict):
    import torch._dynamo

    compiled = torch.compile(forward, backend=backend, dynamic=False)

    @functools.wraps(compiled)  # keeps dynamo's attributes of the compiled callable
    def run(*args, **kwargs):
        with torch._dynamo.config.patch(**limits):
            return compiled(*args, **kwargs)

    return run


def compile_blocks(module: nn.Module, backend: str) -> int:
    """Replace the ``forward`` of every block of ``module`` (see ``_COMPILED_BLOCKS``) by its
    ``torch.compile``-d version, run with dynamo's recompile limits raised for the call only;
    nested blocks are compiled with their outermost block.

    Returns:
        The number of compiled blocks.
    """
    limits = _recompile_limits()
    count = 0
    done = set()
    for name, sub in module.named_modules():
        if type(sub).__name__ not in _COMPILED_BLOCKS:
            continue
        if any(name.startswith(p + ".") for p in done):
            continue
        sub.forward = _compiled(sub.forward, backend, limits)
        done.add(name)
        count += 1
    return count


def apply_speed_options(module: nn.Module, speed, *, convolutional: bool = True) -> nn.Module:
    """Apply ``cfg.MODEL.SPEED`` to a frozen network, in place.

    Args:
        module: a diffusers ``UNet2DConditionModel`` / ``AutoencoderKL``, an open_clip ``CLIP``,
            or a transformers text encoder.
        speed: the ``MODEL.SPEED`` config node.
        convolutional: whether CHANNELS_LAST applies (UNet, VAE).
    Returns:
        ``module``.
    """
    if hasattr(module, "set_attn_processor"):
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        module.set_attn_processor(AttnProcessor2_0() if speed.SDPA else AttnProcessor())
    if speed.CHANNELS_LAST and convolutional:
        module.to(memory_format=torch.channels_last)
    if speed.COMPILE:
        compile_blocks(module, speed.COMPILE)
    return module
