"""Dynamic phrase prompts: PNG's prompt module for the frozen UNet.

``forward`` encodes each caption's phrases with the frozen SD text encoder and lays them out as
the UNet context: the P phrases, then zero vectors up to a fixed ``context_length`` (a zero
token has a zero key and value in SD's bias-free projections; a fixed length keeps an image's
result independent of the rest of its batch). Without adapters this is *static prompting*: every
block sees the phrase features.

With EIPA, :meth:`DynamicPhrasePrompt.block_callback` runs before every UNet block: at a block
with an adapter, the adapter reads the block's input features and rewrites the phrase prompts;
every cross-attention block from there on sees the rewritten prompts.

The module asks the extractor for the UNet's cross-attention maps (``needs_attention``): at an
adapter, the maps of the layers that ran so far give each phrase's foreground (the
``foreground`` function of the diffusion mask head, a prompt input). Per-call results — the
phrase features and every adapter's output — are the :class:`PhrasePromptState` returned as
``PromptOutput.state``, which the backbone hands back in its output (``out.prompt.state``).
Nothing per-call is stored on the module.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from torch import nn

from ..diffusion.frozen import freeze, parse_dtype
from ..diffusion.prompts import PROMPT_REGISTRY, PromptModule, PromptOutput
from .eipa import AdapterOutput, PhraseAdapter, adapter_key, build_adapters, unet_block_layout
from .phrase_features import PhraseEncoder

__all__ = ["DynamicPhrasePrompt", "PhrasePromptState"]


@dataclass
class PhrasePromptState:
    """What :class:`DynamicPhrasePrompt` produced in one call (``PromptOutput.state``).

    Attributes:
        phrases: [N, P, D] static phrase features; valid: [N, P] bool.
        context: [N, L, D] the prompts the next cross-attention block sees (the last adapter's,
            after the UNet ran).
        adapters: one :class:`AdapterOutput` per adapter that ran, in execution order.
        foreground: the ``foreground`` prompt input (see :meth:`DynamicPhrasePrompt.forward`).
    """

    phrases: torch.Tensor
    valid: torch.Tensor
    context: torch.Tensor
    adapters: List[AdapterOutput] = field(default_factory=list)
    foreground: Optional[Callable] = None


def _text_encoder_source(cfg) -> dict:
    """Where the frozen text encoder's weights come from (recorded in checkpoints instead)."""
    d = cfg.MODEL.DIFFUSION
    if d.WEIGHTS == "random":
        return {"weights": "random", "seed": d.RANDOM_INIT_SEED, "arch": json.loads(json.dumps(d.TEXT_ENCODER_CONFIG))}
    return {"weights": os.path.abspath(d.WEIGHTS), "component": "text_encoder"}


@PROMPT_REGISTRY.register()
class DynamicPhrasePrompt(PromptModule):
    """Phrase prompts, optionally rewritten by EIPA adapters between UNet blocks."""

    # The diffusion mask head and the masked adapter attention read the UNet's attention maps.
    needs_attention = True

    @configurable
    def __init__(
        self,
        *,
        phrase_encoder: PhraseEncoder,
        context_length: int,
        adapters: Optional[Dict[str, PhraseAdapter]],
        masked_attention: bool,
    ):
        """
        Args:
            phrase_encoder: frozen text encoder -> phrase features.
            context_length: L, length of the UNet context (phrases + zero padding).
            adapters: ``{UNet block name: PhraseAdapter}``, or None / empty for static prompting.
            masked_attention: restrict adapter cross-attention to the diffusion head's foreground.
        """
        super().__init__()
        if context_length < 1:
            raise ValueError(f"MODEL.PNG.CONTEXT_LENGTH must be positive, got {context_length}")
        self.phrase_encoder = phrase_encoder
        self.context_length = context_length
        # The context: L = context_length tokens (phrases, then zeros) of the phrase features' width.
        self.num_tokens, self.token_dim = int(context_length), int(phrase_encoder.dim)
        adapters = dict(adapters or {})
        # UNet blocks with an adapter, in config order (empty = static prompting).
        self.adapter_blocks: List[str] = list(adapters)
        self.adapters = nn.ModuleDict({adapter_key(b): a for b, a in adapters.items()}) if adapters else None
        self.masked_attention = masked_attention

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        p = cfg.MODEL.PNG
        encoder = PhraseEncoder(freeze(text_encoder, _text_encoder_source(cfg), parse_dtype(cfg.MODEL.DIFFUSION.DTYPE)))
        adapters = None
        if p.EIPA.ENABLED:
            adapters = build_adapters(
                unet_block_layout(unet.config),
                p.EIPA.BLOCKS,
                context_dim=encoder.dim,
                dim=p.EIPA.DIM,
                num_heads=p.EIPA.NHEADS,
                dim_feedforward=p.EIPA.DIM_FEEDFORWARD,
                num_classes=p.NUM_CLASSES,
                gate_init=p.EIPA.GATE_INIT,
            )
        return {
            "phrase_encoder": encoder,
            "context_length": p.CONTEXT_LENGTH,
            "adapters": adapters,
            "masked_attention": p.EIPA.MASKED_ATTENTION,
        }

    def forward(
        self,
        images: torch.Tensor,
        image_index: torch.Tensor,
        *,
        caption_tokens: Sequence[torch.Tensor],
        phrase_token_spans: Sequence[torch.Tensor],
        foreground: Optional[Callable] = None,
    ) -> PromptOutput:
        """
        Args:
            images: [N, 3, H, W] images, one per caption (PNG runs the whole image: no windows).
            image_index: [N] = 0..N-1.
            caption_tokens, phrase_token_spans: per image, see :class:`PhraseEncoder`.
            foreground: ``(maps, valid [N, P], (h, w)) -> [N, P, h*w] bool or None``, the
                diffusion mask head's foreground; None disables masked adapter attention.
        Returns:
            context [N, L, D] float32 (phrases then zeros); state :class:`PhrasePromptState`.
        """
        n = images.shape[0]
        if len(caption_tokens) != n:
            raise ValueError(
                f"PNG needs one UNet input per image, got {n} for {len(caption_tokens)} captions "
                f"(a windowed backbone cuts images into windows; use MODEL.BACKBONE.NAME 'DiffusionBackbone')"
            )
        phrases, valid = self.phrase_encoder(caption_tokens, phrase_token_spans)
        phrases, valid = phrases.to(images.device), valid.to(images.device)
        if phrases.shape[1] > self.context_length:
            raise ValueError(
                f"a narrative has {phrases.shape[1]} phrases but MODEL.PNG.CONTEXT_LENGTH is {self.context_length}"
            )
        context = phrases.new_zeros(n, self.context_length, phrases.shape[-1])
        context[:, : phrases.shape[1]] = phrases
        state = PhrasePromptState(phrases=phrases, valid=valid, context=context, foreground=foreground)
        return PromptOutput(context=context, state=state)

    def block_callback(self, name, hidden_states, context, prompt: PromptOutput):
        """Run the adapter beside block ``name`` (if any); return the block's prompts.

        Returns:
            [N, L, D] context for blocks with cross-attention, None for the others.
        """
        if context is None:
            return None
        key = adapter_key(name)
        state: PhrasePromptState = prompt.state
        if self.adapters is not None and key in self.adapters:
            num = state.valid.shape[1]
            foreground = None
            if self.masked_attention and state.foreground is not None:
                foreground = state.foreground(list(prompt.attention), state.valid, tuple(hidden_states.shape[-2:]))
            out = self.adapters[key](state.context[:, :num], state.valid, hidden_states, foreground)
            state.context = torch.cat([out["prompts"], state.context[:, num:]], dim=1)
            state.adapters.append(
                AdapterOutput(
                    block=name,
                    phrases=out["phrases"],
                    prompts=out["prompts"],
                    mask_logits=out["mask_logits"],
                    class_logits=out["class_logits"],
                )
            )
        return state.context
