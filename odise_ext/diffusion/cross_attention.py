"""Cross-attention probability maps of a diffusers UNet (VPD's attention features, PNG's
diffusion mask head).

While a :class:`CrossAttentionRecorder` is active, every cross-attention layer ("attn2" of each
transformer block) computes its attention explicitly, ``softmax(Q K^T * scale) V`` — an
[HW, L] matrix per head with L text tokens (at most 77), never an HW x HW one — and records the
probabilities averaged over heads. The layer output equals the default SDPA processor's (up to
float rounding) and gradients flow through the maps. The recording processors and shape hooks
are installed on entering :meth:`CrossAttentionRecorder.record` and removed on leaving it: outside
a recording the UNet holds its own processors and no hook of the recorder.
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
        if encoder_hidden_states is None:
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
    """Records the cross-attention layers of ``unet`` while :meth:`record` is active.

    Usage::

        recorder = CrossAttentionRecorder(unet)      # once, at build time (installs nothing)
        with recorder.record() as maps:               # per forward
            unet(...)
        # maps: list of AttentionMap in execution order
    """

    def __init__(self, unet: nn.Module):
        from diffusers.models.attention import BasicTransformerBlock
        from diffusers.models.transformers.transformer_2d import Transformer2DModel

        self._unet = unet
        self._maps: List[AttentionMap] = []
        self._depth = 0  # nesting of record() (a checkpoint recomputation inside a recording)
        self._installed: List = []  # (attention layer, its own processor) while recording
        self._handles: List = []
        self._shape: Dict[str, str] = {}  # layer name -> its transformer's name
        self._transformers: Dict[str, nn.Module] = {}
        self._layers: Dict[str, nn.Module] = {}
        self._latent_hw = None
        self._spatial: Dict[str, tuple] = {}
        self.layer_names: List[str] = []
        for tname, tmod in unet.named_modules():
            if not isinstance(tmod, Transformer2DModel):
                continue
            self._transformers[tname] = tmod
            for bname, block in tmod.named_modules():
                if isinstance(block, BasicTransformerBlock) and getattr(block, "attn2", None) is not None:
                    name = f"{tname}.{bname}.attn2"
                    self._shape[name] = tname
                    self._layers[name] = block.attn2
                    self.layer_names.append(name)
        if not self.layer_names:
            raise ValueError("the UNet has no cross-attention layers to record")

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

    def _install(self):
        self._handles = [self._unet.register_forward_pre_hook(self._latent_hook, with_kwargs=True)]
        self._handles += [t.register_forward_pre_hook(self._make_shape_hook(n)) for n, t in self._transformers.items()]
        for name, layer in self._layers.items():
            self._installed.append((layer, layer.processor))
            layer.set_processor(_RecordingProcessor(self, name, layer.processor))

    def _remove(self):
        for layer, own in self._installed:
            layer.set_processor(own)
        for handle in self._handles:
            handle.remove()
        # the last shapes seen stay: a checkpointed block recomputed in backward (inside a
        # recording of its own) runs without its transformer's / the UNet's pre-hook
        self._installed, self._handles = [], []

    @contextmanager
    def record(self):
        """Installs the recording processors and hooks (on the outermost entry), yields the
        live list of maps recorded in the block, removes them all on leaving it."""
        outer = self._maps
        self._maps = []
        if self._depth == 0:
            self._install()
        self._depth += 1
        try:
            yield self._maps
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._remove()
            self._maps = outer
