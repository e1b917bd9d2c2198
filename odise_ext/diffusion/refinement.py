"""The diffusion feature extractor in VPD / Meta-Prompts mode.

:class:`VPDFeatureExtractor` extends the shared :class:`DiffusionFeatureExtractor` (same taps,
timestep, noise and latent options, so ODISE taps work unchanged) with what VPD and Meta-Prompts
need on top:

- **tuned UNet**: ``MODEL.DIFFUSION.UNET_MODE = "tuned"`` keeps the UNet trainable (and in
  checkpoints) instead of frozen; its lr factor comes from ``OPTIMIZER.LR_MULTIPLIERS``;
- **gradient checkpointing** of the UNet blocks, compatible with attention recording;
- **cross-attention maps** of the (last) UNet pass, recorded by the shared extractor's recorder
  (the backbone averages them per image stride);
- **recurrent refinement** (Meta-Prompts): ``LOOPS`` UNet passes; pass i may replace the output
  of the UNet's time-embedding MLP by its own learnable vector t_i; between passes the UNet's
  full output (its output head ``conv_norm_out -> conv_act -> conv_out`` applied to the stride-8
  features, i.e. Meta-Prompts' ``out(h)``) becomes the next latent. Gradients flow through all
  passes; only the last pass is tapped. With :class:`StepMetaPrompts` pass i uses step i's context.
"""
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Dict, Optional

import torch
from detectron2.config import configurable
from torch import nn

from .feature_extractor import DiffusionFeatureExtractor, Extraction
from .prompts import StepContexts
from .tuned import RecordingCheckpoint, TunedModule

__all__ = ["VPDFeatureExtractor", "UNET_MODES"]


def _keep_frozen(frozen):
    return frozen


def _tune(frozen):
    return TunedModule(frozen.module, frozen.source)


# MODEL.DIFFUSION.UNET_MODE -> what to do with the (frozen-built) UNet.
UNET_MODES = {"frozen": _keep_frozen, "tuned": _tune}


class VPDFeatureExtractor(DiffusionFeatureExtractor):
    """SD VAE + UNet (frozen or tuned) with a prompt module, attention maps and refinement loops."""

    @configurable
    def __init__(
        self,
        *,
        loops: int = 1,
        loop_time_embed: bool = False,
        gradient_checkpointing: bool = False,
        **kwargs,
    ):
        """
        Args:
            loops: number of UNet passes (>= 1).
            loop_time_embed: learn one time-embedding vector per pass, replacing the UNet's
                time-embedding MLP output (Meta-Prompts).
            gradient_checkpointing: checkpoint the UNet's resnets / transformer blocks.
            kwargs: the arguments of :class:`DiffusionFeatureExtractor` (``unet`` may be a
                :class:`TunedModule`; ``record_attention`` records the maps of the last pass).
        """
        super().__init__(**kwargs)
        if self.decode_unet_output:
            raise ValueError("MODEL.DIFFUSION.VAE_DECODER_INPUT 'unet_output' is not supported in VPD mode")
        if loops < 1:
            raise ValueError(f"MODEL.DIFFUSION.REFINE.LOOPS must be >= 1, got {loops}")
        self.loops = int(loops)
        unet = self.unet.module
        if loops > 1 and unet.config.out_channels != unet.config.in_channels:
            raise ValueError(
                f"refinement loops feed the UNet output ({unet.config.out_channels} channels) back "
                f"as its input ({unet.config.in_channels} channels); they must match"
            )
        if loops > 1 and self.shared_noise is not None:
            raise ValueError("refinement loops run on the clean latent; set MODEL.DIFFUSION.ADD_NOISE False")
        time_dim = unet.time_embedding.linear_2.out_features
        # Meta-Prompts draws each t_i [1, T] from N(0, 1).
        self.loop_time_embeds = (
            nn.ParameterList(nn.Parameter(torch.randn(1, time_dim)) for _ in range(loops)) if loop_time_embed else None
        )
        if gradient_checkpointing:
            unet.enable_gradient_checkpointing(RecordingCheckpoint(self.recorder))
        vae_levels = len(self.vae.module.config.block_out_channels)
        self.latent_stride = 2 ** (vae_levels - 1)

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        d, r = cfg.MODEL.DIFFUSION, cfg.MODEL.DIFFUSION.REFINE
        if d.UNET_MODE not in UNET_MODES:
            raise ValueError(f"MODEL.DIFFUSION.UNET_MODE={d.UNET_MODE!r}; expected one of {sorted(UNET_MODES)}")
        args["unet"] = UNET_MODES[d.UNET_MODE](args["unet"])
        args.update(
            loops=r.LOOPS,
            loop_time_embed=r.LOOP_TIME_EMBED,
            record_attention=bool(cfg.MODEL.VPD.ATTENTION_STRIDES) or args["record_attention"],
            gradient_checkpointing=d.GRADIENT_CHECKPOINTING,
        )
        return args

    @contextmanager
    def _loop_time_embedding(self, loop: int):
        """Make the UNet's time-embedding MLP return t_loop (broadcast over the batch)."""
        if self.loop_time_embeds is None:
            yield
            return
        vector = self.loop_time_embeds[loop]

        def replace(module, args, out):
            return vector.to(out.dtype).expand(out.shape[0], -1)

        handle = self.unet.module.time_embedding.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()

    def extract(
        self,
        images: torch.Tensor,
        image_index: Optional[torch.Tensor] = None,
        prompt_inputs: Optional[dict] = None,
    ) -> Extraction:
        """
        Args:
            images: [N, 3, H, W] RGB in [0, 1]; H, W divisible by 8 x 2^(UNet levels - 1).
            image_index: [N] int64 batch image of each row (default: arange(N)).
            prompt_inputs: task inputs of the prompt module (e.g. ``sentences``).
        Returns:
            :class:`Extraction` (attention: the maps of the last pass).
        """
        store: Dict[int, torch.Tensor] = {}
        image_index, mean = self._encode(images, image_index, store)
        prompt_out = None
        if "unet" in self._stages:
            latent = self._unet_latent(mean)
            prompt_out = self.prompt(images, image_index, **(prompt_inputs or {}))
            contexts = [prompt_out.context] * self.loops
            if isinstance(prompt_out.state, StepContexts):
                # Meta-Prompts depth: each step has its own prompts.
                if len(prompt_out.state.contexts) != self.loops:
                    raise ValueError(
                        f"{len(prompt_out.state.contexts)} prompt steps for MODEL.DIFFUSION.REFINE.LOOPS={self.loops}"
                    )
                contexts = prompt_out.state.contexts
            for loop in range(self.loops):
                context = contexts[loop].to(self.unet.dtype)
                last = loop == self.loops - 1
                with ExitStack() as stack:
                    stack.enter_context(self._loop_time_embedding(loop))
                    stack.enter_context(self._prompt_hooks(prompt_out))
                    # Every pass records (not only the last) so that checkpoint recomputation,
                    # which always records, replays the same computation.
                    stack.enter_context(self._recording(prompt_out))
                    stack.enter_context(self._collect("unet", store, stop_when_done=True) if last else nullcontext())
                    out = self.unet(latent, self.timestep, encoder_hidden_states=context, return_dict=False)
                if not last:
                    latent = out[0]

        self._decode(mean, store)
        attention = list(prompt_out.attention) if prompt_out is not None else []
        return Extraction(self._in_tap_order(store), prompt_out, attention)
