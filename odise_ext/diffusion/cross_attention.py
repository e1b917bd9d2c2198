"""Cross-attention probability maps of a diffusers UNet (VPD's attention features, PNG's
diffusion mask head).

While a :class:`CrossAttentionRecorder` is active, every cross-attention layer ("attn2" of each
transformer block) computes its attention explicitly, ``softmax(Q K^T * scale) V`` — an
[HW, L] matrix per head with L text tokens (at most 77), never an HW x HW one — and records the
probabilities averaged over heads. The layer output equals the default SDPA processor's (up to
float rounding), gradients flow through the maps, and layers run SDPA as usual when inactive.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List

import torch
from torch import nn

__all__ = ["AttentionMap", "CrossAttentionRecorder"]


@dataclass
class AttentionMap:
    """probs: [N, h, w, L] attention of each pixel over the L tokens (sums to 1 over L)."""

    name: str
    probs: torch.Tensor
    latent_stride: int  # h = latent height / latent_stride


class _RecordingProcessor:
    def __init__(self, recorder, name, default):
        self.recorder, self.name, self.default = recorder, name, default

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if not self.recorder.active or encoder_hidden_states is None:
            return self.default(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if attention_mask is not None or attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise NotImplementedError(f"{self.name}: only SD v1-style cross-attention can be recorded")
        b, n, _ = hidden_states.shape
        context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        d = k.shape[-1] // attn.heads
        q = q.view(b, n, attn.heads, d).transpose(1, 2)
        k = k.view(b, -1, attn.heads, d).transpose(1, 2)
        v = v.view(b, -1, attn.heads, d).transpose(1, 2)
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        probs = torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)  # [b, heads, n, L]
        out = (probs @ v).transpose(1, 2).reshape(b, n, attn.heads * d).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        self.recorder._store(self.name, probs.mean(dim=1))
        return out / attn.rescale_output_factor


class CrossAttentionRecorder:
    """Installs recording processors on the cross-attention layers of ``unet``.

    Usage::

        recorder = CrossAttentionRecorder(unet)      # once, at build time
        with recorder.record() as maps:               # per forward
            unet(...)
        # maps: list of AttentionMap in execution order
    """

    def __init__(self, unet: nn.Module):
        from diffusers.models.attention import BasicTransformerBlock
        from diffusers.models.transformers.transformer_2d import Transformer2DModel

        self.active = False
        self._maps: List[AttentionMap] = []
        self._shape: Dict[str, tuple] = {}
        self._latent_hw = None
        self._spatial: Dict[str, tuple] = {}
        self.layer_names: List[str] = []
        for tname, tmod in unet.named_modules():
            if not isinstance(tmod, Transformer2DModel):
                continue
            tmod.register_forward_pre_hook(self._make_shape_hook(tname))
            for bname, block in tmod.named_modules():
                if isinstance(block, BasicTransformerBlock) and getattr(block, "attn2", None) is not None:
                    name = f"{tname}.{bname}.attn2"
                    self._shape[name] = tname
                    block.attn2.set_processor(_RecordingProcessor(self, name, block.attn2.processor))
                    self.layer_names.append(name)
        if not self.layer_names:
            raise ValueError("the UNet has no cross-attention layers to record")
        unet.register_forward_pre_hook(self._latent_hook, with_kwargs=True)

    def _latent_hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        self._latent_hw = tuple(sample.shape[-2:])

    def _make_shape_hook(self, tname):
        def hook(module, args):
            self._spatial[tname] = tuple(args[0].shape[-2:])

        return hook

    def _store(self, name, probs):
        h, w = self._spatial[self._shape[name]]
        stride = self._latent_hw[0] // h if self._latent_hw else 1
        self._maps.append(AttentionMap(name, probs.view(probs.shape[0], h, w, probs.shape[-1]), stride))

    @contextmanager
    def record(self):
        self._maps = []
        self.active = True
        try:
            yield self._maps
        finally:
            self.active = False
