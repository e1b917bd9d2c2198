"""Run frozen SD (VAE + UNet) on image windows and collect intermediate features ("taps").

Pipeline (ODISE's feature extraction) for images (or windows) x in [0, 1]:

1. VAE encoder on 2x - 1; latent = posterior mean (first half of ``quant_conv``'s output),
   times the VAE scaling factor unless disabled (VPD).
2. The prompt module gives the cross-attention context, optionally a time-embedding delta
   (added by a forward hook on ``unet.time_embedding``) and optional per-block callbacks
   (forward pre-hooks on every UNet down/mid/up block that may replace the block's
   ``encoder_hidden_states``).
3. UNet on sqrt(abar_t) z + sqrt(1 - abar_t) n at timestep t, n a fixed noise tensor (seeded, at
   a fixed latent size, bicubically resized to the actual latent size), or on z itself.
4. VAE decoder on the clean latent.

A tap is ``"<component>.<module path>:<input|output>"`` (component ``unet`` or ``vae``); hooks
are installed only for the duration of a call. The UNet and the VAE decoder stop (a private
exception raised from the hook of the last tap they must deliver) as soon as all their taps are
collected, so the layers nobody reads never run; a stage without taps is skipped entirely.

When the prompt module asks for them (``PromptModule.needs_attention``), the UNet's
cross-attention maps are recorded during the pass; prompt modules read the maps recorded so far
in their block callbacks (``PromptOutput.attention``) and :meth:`DiffusionFeatureExtractor.extract`
returns them with the features and the prompt actually used.

The same extractor serves VPD and Meta-Prompts (:mod:`.refinement`): the UNet may be tuned
instead of frozen (a :class:`~.tuned.TunedModule`), gradient-checkpointed, and run ``loops``
times (Meta-Prompts' recurrent refinement: pass i may replace the time-embedding MLP's output by
its own learnable vector t_i; between passes the UNet's full output, i.e. its output head applied
to the stride-8 features, is the next latent; only the last pass is tapped). With the default
``loops=1`` the UNet runs once, exactly as without refinement.
"""
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from .cross_attention import AttentionMap, CrossAttentionRecorder
from .frozen import FrozenModule, freeze, parse_dtype
from .prompts import PromptModule, PromptOutput, build_prompt_module
from .refinement import UNET_MODES, check_refinement, loop_time_embedding, make_loop_time_embeds, resolve_unet_mode
from .schedule import alphas_cumprod, fixed_noise
from .speed import apply_speed_options
from .sd_loading import load_sd_components
from .taps import Tap, collect_taps, first_tensor, parse_taps, tap_channels
from .tuned import RecordingCheckpoint, TunedModule

__all__ = ["Tap", "parse_taps", "DiffusionFeatureExtractor", "Extraction", "UNET_MODES", "fixed_noise", "alphas_cumprod"]

_STAGES = ("vae_encoder", "unet", "vae_decoder")


@dataclass
class Extraction:
    """Output of :meth:`DiffusionFeatureExtractor.extract` for N images (or windows).

    features: one float32 [N, C_i, h_i, w_i] map per tap, in tap order.
    prompt: the prompt module's output the UNet saw (context [N, L, D], state); None if the UNet
        did not run.
    attention: cross-attention maps of the (last) UNet pass in execution order (``probs``
        [N, h, w, L]); empty unless the extractor records attention.
    """

    features: List[torch.Tensor]
    prompt: Optional[PromptOutput] = None
    attention: List[AttentionMap] = field(default_factory=list)


def _add_to_output(delta, module, args, output):
    return output + delta.to(output.dtype)


_VAE_DECODER_INPUTS = ("latent", "unet_output")


def _vae_decoder_input(value: str) -> str:
    if value not in _VAE_DECODER_INPUTS:
        raise ValueError(f"MODEL.DIFFUSION.VAE_DECODER_INPUT={value!r}; expected one of {_VAE_DECODER_INPUTS}")
    return value


class DiffusionFeatureExtractor(nn.Module):
    """SD UNet (frozen or tuned) + frozen VAE with a prompt module; returns the configured taps.

    Keys under this module map onto ODISE's ``backbone.feature_extractor.*``: the prompt
    module's parameters are ``prompt.<ODISE name>``; ``unet``/``vae`` are frozen (not saved).
    """

    @configurable
    def __init__(
        self,
        *,
        unet: Union[FrozenModule, TunedModule],
        vae: FrozenModule,
        prompt: PromptModule,
        taps: Sequence[Tap],
        timestep: int,
        alpha_cumprod: float,
        noise: Optional[torch.Tensor],
        scale_latent: bool,
        decode_unet_output: bool = False,
        record_attention: bool = False,
        loops: int = 1,
        loop_time_embed: bool = False,
        gradient_checkpointing: bool = False,
    ):
        """
        Args:
            unet: diffusers ``UNet2DConditionModel`` behind :class:`FrozenModule` or (VPD,
                Meta-Prompts: trainable, saved in checkpoints) :class:`TunedModule`.
            vae: frozen diffusers ``AutoencoderKL``.
            prompt: the prompt module (trainable parts stay float32).
            taps: taps to collect, see :func:`parse_taps`.
            timestep: UNet timestep t.
            alpha_cumprod: abar_t of the noise schedule at ``timestep``.
            noise: [1, C_latent, n, n] fixed noise, or None to run the UNet on the clean latent.
            scale_latent: multiply the posterior mean by the VAE's scaling factor.
            decode_unet_output: VAE-decoder taps see the decoding of the UNet's output (the
                latent it predicts, PNG's mask features) instead of the posterior mean's.
                The UNet then runs to its end.
            record_attention: record the UNet's cross-attention maps in every call (those of
                the last pass are returned).
            loops: UNet passes (>= 1; Meta-Prompts' recurrent refinement when > 1).
            loop_time_embed: learn one time-embedding vector per pass (``loop_time_embeds``),
                replacing the UNet's time-embedding MLP output (Meta-Prompts).
            gradient_checkpointing: checkpoint the UNet's resnets / transformer blocks
                (compatible with attention recording).
        """
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.prompt = prompt
        self.taps = list(taps)
        self.alpha_cumprod = float(alpha_cumprod)
        self.scale_latent = scale_latent
        timestep = torch.tensor([timestep], dtype=torch.long)
        self.register_buffer("timestep", timestep, persistent=False)
        # Regenerated from the seed at build time (as ODISE does), hence not persistent.
        self.register_buffer("shared_noise", noise, persistent=False)
        self.decode_unet_output = bool(decode_unet_output)
        if self.decode_unet_output and not {"unet", "vae_decoder"} <= self._stages:
            raise ValueError(
                "MODEL.DIFFUSION.VAE_DECODER_INPUT 'unet_output' needs both UNet and VAE-decoder taps"
            )
        # Not a module: it only installs processors on the UNet (whose weights it shares).
        self.recorder = CrossAttentionRecorder(unet.module) if record_attention else None
        self._tap_modules = [self._resolve(t) for t in self.taps]
        self.tap_channels = [tap_channels(m, t) for m, t in zip(self._tap_modules, self.taps)]
        check_refinement(unet.module, prompt, loops, noise is not None, self.decode_unet_output)
        self.loops = int(loops)
        # Meta-Prompts' t_i (parameters "loop_time_embeds.<i>"), or None: the UNet's own MLP.
        self.loop_time_embeds = make_loop_time_embeds(unet.module, loops) if loop_time_embed else None
        if gradient_checkpointing:
            unet.module.enable_gradient_checkpointing(RecordingCheckpoint(self.recorder))
        # Image pixels per latent pixel (8 for SD).
        self.latent_stride = 2 ** (len(vae.module.config.block_out_channels) - 1)

    @classmethod
    def from_config(
        cls,
        cfg,
        clip=None,
        *,
        unet_mode: str = "frozen",
        loops: int = 1,
        loop_time_embed: bool = False,
        gradient_checkpointing: bool = False,
        record_attention: bool = False,
    ):
        """``clip``: optional frozen ``ClipWrapper`` shared with the prompt module. The other
        arguments are the family's choices (VPD / Meta-Prompts pass their ``MODEL.VPD`` keys):
        ``unet_mode`` one of :data:`UNET_MODES`; ``record_attention`` records the attention maps
        even when the prompt module does not need them; see :meth:`__init__` for the rest."""
        d = cfg.MODEL.DIFFUSION
        dtype = parse_dtype(d.DTYPE)
        # UNet and VAE are built in their frozen dtype; the text encoder's users choose its dtype.
        sd = load_sd_components(cfg, dtypes={"unet": dtype, "vae": dtype})
        unet, unet_source = sd["unet"]
        vae, vae_source = sd["vae"]
        text_encoder, _ = sd["text_encoder"]
        for module in (unet, vae):
            apply_speed_options(module, cfg.MODEL.SPEED)
        apply_speed_options(text_encoder, cfg.MODEL.SPEED, convolutional=False)
        if d.TIMESTEP < 0 or d.TIMESTEP >= d.NUM_TRAIN_TIMESTEPS:
            raise ValueError(
                f"MODEL.DIFFUSION.TIMESTEP={d.TIMESTEP} outside [0, {d.NUM_TRAIN_TIMESTEPS})."
            )
        prompt = build_prompt_module(cfg, text_encoder=text_encoder, unet=unet, clip=clip)
        abar = alphas_cumprod(d.BETA_START, d.BETA_END, d.NUM_TRAIN_TIMESTEPS)[d.TIMESTEP].item()
        noise = (
            fixed_noise(unet.config.in_channels, d.NOISE_LATENT_SIZE, d.NOISE_SEED)
            if d.ADD_NOISE
            else None
        )
        return {
            "unet": resolve_unet_mode(unet_mode)(freeze(unet, unet_source, dtype)),
            "vae": freeze(vae, vae_source, dtype),
            "prompt": prompt,
            "taps": parse_taps(d.TAPS, d.TAP_STRIDES),
            "timestep": d.TIMESTEP,
            "alpha_cumprod": abar,
            "noise": noise,
            "scale_latent": d.SCALE_LATENT,
            "decode_unet_output": _vae_decoder_input(d.VAE_DECODER_INPUT) == "unet_output",
            "record_attention": record_attention or prompt.needs_attention,
            "loops": loops,
            "loop_time_embed": loop_time_embed,
            "gradient_checkpointing": gradient_checkpointing,
        }

    def _resolve(self, tap: Tap) -> nn.Module:
        root = (self.unet if tap.component == "unet" else self.vae).module
        try:
            return root.get_submodule(tap.path)
        except AttributeError as e:
            raise ValueError(
                f"Tap {tap.spec!r}: {type(root).__name__} has no module {tap.path!r}."
            ) from e

    # ---- hooks -----------------------------------------------------------------------------
    def _collect(self, stage: str, store: Dict[int, torch.Tensor], stop_when_done: bool):
        """The tap hooks of ``stage`` (see :func:`collect_taps`)."""
        wanted = [i for i, t in enumerate(self.taps) if t.stage == stage]
        return collect_taps([(i, self.taps[i].where, self._tap_modules[i]) for i in wanted], store, stop_when_done)

    def _unet_blocks(self):
        unet = self.unet.module
        blocks = [(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
        blocks.append(("mid_block", unet.mid_block))
        return blocks + [(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]

    def _block_callback_hook(self, name: str, prompt_out: PromptOutput, module, args, kwargs):
        """Forward pre-hook of UNet block ``name``: lets the prompt module replace its context."""
        context = kwargs.get("encoder_hidden_states")
        new = self.prompt.block_callback(name, first_tensor(args, kwargs), context, prompt_out)
        if new is None:
            return None
        if "encoder_hidden_states" not in kwargs:
            raise ValueError(
                f"UNet block {name} has no cross-attention; its prompt cannot be replaced."
            )
        kwargs["encoder_hidden_states"] = new.to(self.unet.dtype)
        return args, kwargs

    @contextmanager
    def _recording(self, prompt_out: PromptOutput):
        """Record the cross-attention maps of one UNet pass into ``prompt_out.attention`` (the
        live list: block callbacks see the maps of the layers that ran so far)."""
        if self.recorder is None:
            yield prompt_out.attention
            return
        with self.recorder.record() as maps:
            prompt_out.attention = maps
            yield maps

    def _loop_time_embedding(self, loop: int):
        """Pass ``loop``'s time-vector hook (a no-op without ``loop_time_embeds``)."""
        if self.loop_time_embeds is None:
            return nullcontext()
        return loop_time_embedding(self.unet.module, self.loop_time_embeds[loop])

    @contextmanager
    def _prompt_hooks(self, prompt_out: PromptOutput):
        """Time-embedding delta and per-block prompt callbacks, for one UNet call."""
        handles = []
        if prompt_out.time_embed_delta is not None:
            hook = partial(_add_to_output, prompt_out.time_embed_delta)
            handles.append(self.unet.module.time_embedding.register_forward_hook(hook))
        if self.prompt.uses_block_callbacks:
            for name, block in self._unet_blocks():
                hook = partial(self._block_callback_hook, name, prompt_out)
                handles.append(block.register_forward_pre_hook(hook, with_kwargs=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    # ---- forward ---------------------------------------------------------------------------
    def _noisy(self, latent: torch.Tensor) -> torch.Tensor:
        if self.shared_noise is None:
            return latent
        noise = self.shared_noise
        if noise.shape[-2:] != latent.shape[-2:]:
            noise = F.interpolate(
                noise, size=latent.shape[-2:], mode="bicubic", align_corners=False
            )
        a = self.alpha_cumprod
        return a**0.5 * latent + (1.0 - a) ** 0.5 * noise.to(latent.dtype)

    def forward(
        self,
        images: torch.Tensor,
        image_index: Optional[torch.Tensor] = None,
        prompt_inputs: Optional[dict] = None,
    ) -> List[torch.Tensor]:
        """The tap features of :meth:`extract` (one float32 [N, C_i, h_i, w_i] map per tap)."""
        return self.extract(images, image_index, prompt_inputs).features

    def extract(
        self,
        images: torch.Tensor,
        image_index: Optional[torch.Tensor] = None,
        prompt_inputs: Optional[dict] = None,
    ) -> Extraction:
        """
        Args:
            images: [N, 3, R, R] RGB images or windows in [0, 1] (R divisible by
                8 x 2^(UNet levels - 1)).
            image_index: [N] int64 batch image of each row (default: arange(N)).
            prompt_inputs: task-specific keyword inputs of the prompt module.
        Returns:
            :class:`Extraction`: one float32 [N, C_i, h_i, w_i] map per tap, in tap order
            (``tap_channels[i]`` channels, at the native resolution of the tapped module), the
            prompt and the recorded attention maps.
        """
        store: Dict[int, torch.Tensor] = {}
        image_index, mean = self._encode(images, image_index, store)
        decoder_input = mean
        prompt_out = None
        if "unet" in self._stages:
            prompt_out = self.prompt(images, image_index, **(prompt_inputs or {}))
            out = self._run_unet(self._unet_latent(mean), prompt_out, store)
            if self.decode_unet_output:
                decoder_input = self._latent_to_posterior_units(out[0])
        self._decode(decoder_input, store)
        attention = list(prompt_out.attention) if prompt_out is not None else []
        return Extraction(self._in_tap_order(store), prompt_out, attention)

    def _run_unet(self, latent: torch.Tensor, prompt_out: PromptOutput, store: Dict[int, torch.Tensor]):
        """``loops`` UNet passes from ``latent`` [N, 4, h, w]; the last one records the taps.

        Pass i sees step i's context when the prompt module returns step contexts. Returns the
        UNet's output tuple of the last pass, or None when the taps stopped it early.
        """
        contexts = prompt_out.step_contexts or [prompt_out.context] * self.loops
        for loop in range(self.loops):
            last = loop == self.loops - 1
            out = None  # stays None when the taps stop the pass early
            with ExitStack() as stack:
                stack.enter_context(self._loop_time_embedding(loop))
                stack.enter_context(self._prompt_hooks(prompt_out))
                # Every pass records (not only the last) so that checkpoint recomputation,
                # which always records, replays the same computation.
                stack.enter_context(self._recording(prompt_out))
                stop = not self.decode_unet_output
                stack.enter_context(self._collect("unet", store, stop_when_done=stop) if last else nullcontext())
                context = contexts[loop].to(self.unet.dtype)
                out = self.unet(latent, self.timestep, encoder_hidden_states=context, return_dict=False)
            if not last:
                latent = out[0]
        return out

    @property
    def _stages(self):
        return {t.stage for t in self.taps}

    def _encode(self, images: torch.Tensor, image_index: Optional[torch.Tensor], store: Dict[int, torch.Tensor]):
        """Check the input, run the VAE encoder (recording its taps into ``store``).

        Returns ``(image_index, mean)``: image_index [N] (default arange(N)); mean [N, 4, H/8, W/8]
        the posterior mode (unscaled).
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Expected RGB images of shape [N, 3, H, W], got {tuple(images.shape)}.")
        if image_index is None:
            image_index = torch.arange(images.shape[0], device=images.device)
        vae = self.vae.module
        with self._collect("vae_encoder", store, stop_when_done=False):
            moments = vae.encoder((images * 2.0 - 1.0).to(self.vae.dtype))
            if vae.quant_conv is not None:
                moments = vae.quant_conv(moments)
        return image_index, moments[:, : vae.config.latent_channels]

    def _unet_latent(self, mean: torch.Tensor) -> torch.Tensor:
        """The UNet's input: the (optionally scaled and noised) latent, in the UNet's dtype."""
        latent = mean * self.vae.module.config.scaling_factor if self.scale_latent else mean
        return self._noisy(latent).to(self.unet.dtype)

    def _latent_to_posterior_units(self, latent: torch.Tensor) -> torch.Tensor:
        """Undo the latent scaling of :meth:`_unet_latent` (the VAE decodes unscaled latents)."""
        if self.scale_latent:
            latent = latent / self.vae.module.config.scaling_factor
        return latent.to(self.vae.dtype)

    def _decode(self, mean: torch.Tensor, store: Dict[int, torch.Tensor]) -> None:
        """Run the VAE decoder up to its last tap (if any tap is there)."""
        if "vae_decoder" in self._stages:
            vae = self.vae.module
            with self._collect("vae_decoder", store, stop_when_done=True):
                vae.decoder(mean if vae.post_quant_conv is None else vae.post_quant_conv(mean))

    def _in_tap_order(self, store: Dict[int, torch.Tensor]) -> List[torch.Tensor]:
        missing = [t.spec for i, t in enumerate(self.taps) if i not in store]
        if missing:
            raise RuntimeError(f"Taps {missing} were never executed in the forward pass.")
        return [store[i] for i in range(len(self.taps))]
