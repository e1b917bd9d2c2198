"""The prompt-module interface: what goes into the UNet's cross-attention.

A prompt module turns the (windowed) images, and whatever per-image inputs a task has (class
names, phrases, ...), into the UNet's ``encoder_hidden_states``, optionally a delta added to the
UNet time embedding, and optionally a per-call ``state``. Modules that need to act *between* UNet
blocks (EIPA reads each block's image features and rewrites the prompt of the next block)
override :meth:`PromptModule.block_callback`; the feature extractor calls it before every UNet
down/mid/up block, and only installs the hooks for modules that override it. Modules that read
the UNet's cross-attention maps set ``needs_attention``; the extractor then records them and
hands the maps recorded so far to the block callbacks (``PromptOutput.attention``).

What callers need to know about a module before calling it is declared as typed attributes of
:class:`PromptModule` (``num_tokens``, ``token_dim``, ``steps``, ``needs_attention``,
``shared_clip``); every subclass states the ones that apply to it.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["PROMPT_REGISTRY", "PromptModule", "PromptOutput", "SentenceTokens", "build_prompt_module"]

PROMPT_REGISTRY = Registry("PROMPT")
PROMPT_REGISTRY.__doc__ = """
Registry for prompt modules (cross-attention inputs of the diffusion UNet).
A registered class is called as ``cls(cfg, text_encoder=..., unet=...)`` with the built
(unfrozen) SD text encoder and UNet, from which it reads any width or block layout it needs
(use ``@configurable``), and must be a :class:`PromptModule`.
"""


@dataclass
class PromptOutput:
    """Output of :meth:`PromptModule.forward` for N windows.

    Attributes:
        context: [N, L, D] cross-attention input (any float dtype; cast to the UNet's dtype).
        time_embed_delta: [N, T] added to the UNet time embedding (T = 4 x first UNet width), or
            None.
        state: anything the module wants back in :meth:`PromptModule.block_callback` for this
            call, and what the task reads back from the backbone's output (keeps prompt modules
            free of per-call attributes).
        attention: the cross-attention maps (``AttentionMap``) recorded so far in this call,
            filled by the feature extractor while the UNet runs (empty unless it records).
        step_contexts: one [N, L, D] context per UNet pass of the recurrent refinement (pass i
            sees ``step_contexts[i]``), for modules with ``steps``; None: ``context`` for every
            pass. ``context`` is then the last step's.
    """

    context: torch.Tensor
    time_embed_delta: Optional[torch.Tensor] = None
    state: Any = None
    attention: List[Any] = field(default_factory=list)
    step_contexts: Optional[List[torch.Tensor]] = None


@dataclass
class SentenceTokens:
    """Per-image language features of :class:`SentencePrompt` (``PromptOutput.state``).

    features: [B, L, D] adapted token features; mask: [B, L] bool, True for real tokens.
    """

    features: torch.Tensor
    mask: torch.Tensor


class PromptModule(nn.Module):
    """Base class of prompt modules.

    Subclasses override the class attributes below that apply to them (as class attributes,
    instance attributes set in ``__init__`` or read-only properties).
    """

    # True when the module (or its task) reads the UNet's cross-attention maps.
    needs_attention: bool = False
    # L, the context length of every call; None when it varies per call (e.g. with the phrases).
    # Attention-map channels and the Meta-Prompts re-arrangement need a fixed L.
    num_tokens: Optional[int] = None
    # D, the width of the context tokens (and of the tokens handed back in ``state``).
    token_dim: Optional[int] = None
    # Number of per-pass contexts returned in ``PromptOutput.step_contexts`` (it must equal the
    # extractor's loops); None: one context for every pass.
    steps: Optional[int] = None
    # A frozen CLIP the module holds that other heads may share instead of building another.
    shared_clip: Optional[nn.Module] = None

    def forward(self, images: torch.Tensor, image_index: torch.Tensor, **inputs) -> PromptOutput:
        """
        Args:
            images: [N, 3, R, R] RGB windows in [0, 1] at the UNet input size R.
            image_index: [N] int64, the batch image each window was cut from (for per-image
                inputs such as class names or phrases).
            inputs: task-specific inputs (passed through ``DiffusionBackbone.forward``).
        """
        raise NotImplementedError

    def block_callback(
        self, name: str, hidden_states: torch.Tensor, context: Optional[torch.Tensor], prompt: PromptOutput
    ) -> Optional[torch.Tensor]:
        """Called right before UNet block ``name`` ("down_blocks.i", "mid_block", "up_blocks.i").

        Args:
            name: block name inside the UNet.
            hidden_states: [N, C, h, w] the block's image-feature input.
            context: [N, L, D] the cross-attention input the block would receive, or None for
                blocks without cross-attention.
            prompt: the :class:`PromptOutput` of the current call (its ``state``, and the
                ``attention`` maps of the layers that ran so far).
        Returns:
            A replacement [N, L', D] context for this block (only for blocks with
            cross-attention), or None to keep ``context``.
        """
        return None

    @property
    def uses_block_callbacks(self) -> bool:
        """True iff the subclass overrides :meth:`block_callback`."""
        return type(self).block_callback is not PromptModule.block_callback


def build_prompt_module(
    cfg, *, text_encoder: nn.Module, unet: Optional[nn.Module], clip: Optional[nn.Module] = None
) -> PromptModule:
    """Build ``cfg.MODEL.DIFFUSION.PROMPT.NAME`` from :data:`PROMPT_REGISTRY`.

    Args:
        cfg: the config.
        text_encoder: SD's (frozen, fp32) text encoder, for prompts computed once at build time
            (e.g. the empty-prompt embedding); modules that need it later keep it frozen.
        unet: the built diffusers ``UNet2DConditionModel`` (its config gives the widths and
            block layout prompt modules depend on).
        clip: an already built frozen CLIP (``ClipWrapper``) to share instead of building another
            one; passed on (as ``clip=``) only when given, so only CLIP-based prompt modules
            need to accept it.
    """
    name = cfg.MODEL.DIFFUSION.PROMPT.NAME
    shared = {} if clip is None else {"clip": clip}
    module = PROMPT_REGISTRY.get(name)(
        cfg, text_encoder=text_encoder, unet=unet, **shared
    )
    if not isinstance(module, PromptModule):
        raise TypeError(f"Prompt module {name!r} must subclass PromptModule, got {type(module)}.")
    return module
