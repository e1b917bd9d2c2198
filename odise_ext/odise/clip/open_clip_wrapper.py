"""A frozen open_clip model with ODISE's preprocessing.

The open_clip ``CLIP`` sits inside a :class:`~odise_ext.diffusion.frozen.FrozenModule`, so it is
never trained nor checkpointed. The wrapper exposes what the rest of the project needs:
``encode_image_prefix`` (the implicit captioner's input), ``encode_text``, the tokenizer, and the
vision transformer itself (``visual``) for mask-attention classification.
"""
import json
import os
from functools import lru_cache
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...diffusion.frozen import freeze, parse_dtype
from ...diffusion.lean_build import assign_state_dict, parameters_on_meta
from ...diffusion.speed import apply_speed_options

__all__ = ["ClipWrapper", "build_clip", "build_open_clip_model", "load_clip_weights"]

# OpenAI CLIP normalisation constants.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_EXPECTED = (
    "an open_clip state dict (.bin/.pt/.pth via torch.save, or .safetensors; keys like "
    "'visual.conv1.weight', 'token_embedding.weight') or OpenAI's TorchScript CLIP file, for the "
    "architecture given by MODEL.CLIP.NAME / MODEL.CLIP.CUSTOM, or an open_clip '<model>/<pretrained>' "
    "tag such as 'ViT-L-14-336/openai' (fetched through open_clip's cache, odise_ext/zoo/hub.py)"
)
# Prompts per forward pass of the text tower (bounds its activation memory).
_TEXT_CHUNK = 32
# Non-tensor entries of OpenAI's TorchScript state dicts.
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")


@lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    # Building the BPE tables takes ~0.1 s; share one tokenizer per context length.
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def build_open_clip_model(cfg) -> nn.Module:
    """Random-init open_clip ``CLIP`` for ``MODEL.CLIP.NAME`` (or the ``CUSTOM`` architecture)."""
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    c = cfg.MODEL.CLIP
    if c.NAME == "custom":
        u = c.CUSTOM
        model_cfg = dict(
            embed_dim=u.EMBED_DIM,
            vision_cfg=dict(
                image_size=u.IMAGE_SIZE,
                patch_size=u.PATCH_SIZE,
                width=u.VISION_WIDTH,
                layers=u.VISION_LAYERS,
                head_width=u.VISION_HEAD_WIDTH,
            ),
            text_cfg=dict(
                context_length=u.CONTEXT_LENGTH,
                vocab_size=u.VOCAB_SIZE,
                width=u.TEXT_WIDTH,
                heads=u.TEXT_HEADS,
                layers=u.TEXT_LAYERS,
            ),
        )
    else:
        model_cfg = open_clip.get_model_config(c.NAME)
        if model_cfg is None:
            raise ValueError(
                f"MODEL.CLIP.NAME={c.NAME!r} is not an open_clip model config "
                f"(e.g. 'ViT-L-14-336'); use 'custom' with MODEL.CLIP.CUSTOM for a tiny model."
            )
        if "custom_text" in model_cfg or "hf_model_name" in model_cfg.get("text_cfg", {}):
            raise ValueError(
                f"MODEL.CLIP.NAME={c.NAME!r}: only OpenAI-style CLIP models are supported."
            )
    model_cfg = dict(model_cfg)
    quick_gelu = bool(model_cfg.pop("quick_gelu", False)) or c.QUICK_GELU
    return open_clip.CLIP(
        embed_dim=model_cfg["embed_dim"],
        vision_cfg=CLIPVisionCfg(**model_cfg["vision_cfg"]),
        text_cfg=CLIPTextCfg(**model_cfg["text_cfg"]),
        quick_gelu=quick_gelu,
    )


def _read_torch_or_torchscript(path: str) -> dict:
    # OpenAI ships TorchScript archives: their tensors are read without loading their code.
    import zipfile

    from ...utils.safe_load import UnsafeFileError, read_torchscript_tensors, safe_torch_load

    try:
        with zipfile.ZipFile(path) as zf:
            is_script = any(n.endswith("/code/") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        is_script = False
    try:
        return read_torchscript_tensors(path) if is_script else safe_torch_load(path, mmap=True)
    except UnsafeFileError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"Could not read {path!r} ({type(e).__name__}: {e}): expected {_EXPECTED}.") from e


def _read_clip_state_dict(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"MODEL.CLIP.WEIGHTS={path!r} does not exist. Expected {_EXPECTED}."
        )
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path, device="cpu")
    else:
        state = _read_torch_or_torchscript(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}; expected {_EXPECTED}.")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    for key in _OPENAI_META_KEYS:
        state.pop(key, None)
    return state


def load_clip_weights(model: nn.Module, path: str, dtype: torch.dtype = None) -> None:
    """Strictly load a local CLIP checkpoint into ``model``; mismatches raise ``ValueError``.

    The file's tensors become the model's parameters (``assign``; converted to ``dtype``, default
    the model's own), so ``model`` may hold meta placeholders (see ``lean_build``)."""
    state = _read_clip_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or bad:
        raise ValueError(
            f"{path!r} does not match the configured CLIP architecture: missing {missing[:3]} "
            f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)}), wrong shapes "
            f"(key, file, model) {bad[:3]}. Expected {_EXPECTED}."
        )
    assign_state_dict(model, state, dtype)


class ClipWrapper(nn.Module):
    """Frozen open_clip CLIP with ODISE's image preprocessing.

    Args:
        model: an open_clip ``CLIP`` (will be frozen).
        source: description of the weights' origin, recorded in checkpoints.
        dtype: dtype the frozen model runs in; outputs are float32.
    """

    def __init__(self, model: nn.Module, source: dict, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = freeze(model, source, dtype)
        size = model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.context_length = model.context_length
        self.mean = CLIP_MEAN
        self.std = CLIP_STD

    @property
    def clip(self) -> nn.Module:
        """The underlying open_clip ``CLIP``."""
        return self.model.module

    def logit_scale(self) -> torch.Tensor:
        """CLIP's own temperature exp(logit_scale), clamped at 100 as in CLIP's training."""
        return self.model.module.logit_scale.exp().clamp(max=100)

    @property
    def visual(self) -> nn.Module:
        """The open_clip ``VisionTransformer`` (conv1, class_embedding, positional_embedding,
        ln_pre, transformer, ln_post, proj)."""
        return self.model.module.visual

    @property
    def embed_dim(self) -> int:
        """Width of the joint image-text embedding (768 for ViT-L/14)."""
        return self.model.module.text_projection.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def tokenizer(self):
        """open_clip's ``SimpleTokenizer`` (pads with 0 after <|endoftext|>)."""
        return _tokenizer(self.context_length)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """``texts`` -> [N, context_length] int64 token ids."""
        return self.tokenizer(list(texts))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """ODISE's CLIP preprocessing.

        Args:
            images: [N, 3, H, W] RGB in [0, 1].
        Returns:
            [N, 3, S, S] (S = CLIP image size): bicubic resize (no antialias, no clamping) of the
            short side to S, centre crop, CLIP mean/std normalisation.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Expected images of shape [N, 3, H, W], got {tuple(images.shape)}.")
        th, tw = self.image_size
        h, w = images.shape[-2:]
        scale = max(th / h, tw / w)
        size = (max(th, round(h * scale)), max(tw, round(w * scale)))
        if size != (h, w):
            images = F.interpolate(images, size=size, mode="bicubic", align_corners=False)
        top, left = (size[0] - th) // 2, (size[1] - tw) // 2
        images = images[:, :, top : top + th, left : left + tw]
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def encode_image_prefix(self, images: torch.Tensor) -> torch.Tensor:
        """Projected CLS embedding ``ln_post(CLS) @ proj`` (not normalised).

        Args:
            images: [N, 3, H, W] RGB in [0, 1].
        Returns:
            [N, embed_dim] float32.
        """
        x = self.preprocess(images.float()).to(self.dtype)
        return self.clip.encode_image(x, normalize=False).float()

    def encode_text(self, texts: List[str]) -> torch.Tensor:
        """CLIP text embeddings (not normalised).

        Args:
            texts: N strings.
        Returns:
            [N, embed_dim] float32.
        """
        tokens = self.tokenize(texts).to(self.clip.token_embedding.weight.device)
        # Chunks: a whole vocabulary (hundreds of prompts) at once holds its [N, 77, 4 * width]
        # MLP activations in memory at the same time; rows are independent, so chunking is exact.
        chunks = [
            self.clip.encode_text(t, normalize=False).float() for t in tokens.split(_TEXT_CHUNK)
        ]
        return torch.cat(chunks) if chunks else tokens.new_zeros(0, self.embed_dim).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image_prefix(images)


def _describe(cfg, weights: str = "") -> dict:
    c = cfg.MODEL.CLIP
    if c.WEIGHTS == "random":
        arch = json.loads(json.dumps(c.CUSTOM)) if c.NAME == "custom" else c.NAME
        seed = c.RANDOM_INIT_SEED
        return {"weights": "random", "seed": seed, "arch": arch, "quick_gelu": c.QUICK_GELU}
    return {"weights": os.path.abspath(weights), "arch": c.NAME, "quick_gelu": c.QUICK_GELU}


def build_clip(cfg) -> ClipWrapper:
    """Build the frozen CLIP of ``cfg.MODEL.CLIP`` (random init or a local checkpoint)."""
    c = cfg.MODEL.CLIP
    if not c.WEIGHTS:
        raise ValueError(
            f"MODEL.CLIP.WEIGHTS is empty. Set it to {_EXPECTED}, or 'random' (tests/benchmarks)."
        )
    dtype = parse_dtype(c.DTYPE)
    if c.WEIGHTS == "random":
        # float32 init, cast by the wrapper (open_clip re-initialises its layers after building
        # them, so they cannot be cast one by one; the float32 CLIP exists before the SD parts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.RANDOM_INIT_SEED)
            model = build_open_clip_model(cfg)
    else:
        from ...zoo.hub import resolve_clip_weights

        weights = resolve_clip_weights(c.WEIGHTS)  # an open_clip "<model>/<pretrained>" tag -> its cached file
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"MODEL.CLIP.WEIGHTS={c.WEIGHTS!r} does not exist. Expected {_EXPECTED}."
            )
        with parameters_on_meta():
            model = build_open_clip_model(cfg)
        load_clip_weights(model, weights, dtype)
    apply_speed_options(model, cfg.MODEL.SPEED, convolutional=False)
    return ClipWrapper(model, _describe(cfg, c.WEIGHTS if c.WEIGHTS == "random" else weights), dtype)
