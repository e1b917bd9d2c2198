"""Build and load Stable Diffusion's UNet, VAE and text encoder, offline.

Three sources, chosen by ``MODEL.DIFFUSION.WEIGHTS``:

- ``"random"``: random initialisation (seeded by ``MODEL.DIFFUSION.RANDOM_INIT_SEED``) of the
  architectures in ``MODEL.DIFFUSION.{UNET,VAE,TEXT_ENCODER}_CONFIG``;
- a local **diffusers folder** with ``unet/``, ``vae/`` and ``text_encoder/`` sub-folders (each with
  its own ``config.json``, which defines the architecture);
- a **single-file original checkpoint** (``.ckpt`` / ``.safetensors`` / ``.pt`` / ``.bin``, CompVis
  naming: ``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*``),
  the file users have for SD v1.3/v1.5. The architecture comes from the ``*_CONFIG`` nodes; keys
  are converted with diffusers' own ldm->diffusers mapping functions and loaded *strictly*, so a
  file that does not match the configured architecture is an error, not a half-random model.
"""
import json
import os
import pickle
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from .lean_build import assign_state_dict, cast_while_building, parameters_on_meta

__all__ = [
    "SD_COMPONENTS",
    "build_unet",
    "build_vae",
    "build_text_encoder",
    "load_sd_components",
    "read_state_dict",
    "unet_kwargs",
    "vae_kwargs",
    "text_encoder_kwargs",
]

SD_COMPONENTS = ("unet", "vae", "text_encoder")
_SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")
_EXPECTED_FORMATS = (
    "a local diffusers folder with unet/, vae/ and text_encoder/ sub-folders, a single-file "
    "original Stable Diffusion checkpoint (" + ", ".join(_SINGLE_FILE_SUFFIXES) + ", CompVis "
    "naming: model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*), a "
    "Hugging Face reference hf://<org>/<repo>[/<file>] (odise_ext/zoo/hub.py), or 'random'"
)
# Prefix of SD v1's text encoder (a transformers CLIPTextModel) inside an original checkpoint.
_LDM_TEXT_PREFIX = "cond_stage_model.transformer."


def unet_kwargs(node) -> dict:
    """diffusers ``UNet2DConditionModel`` kwargs from ``MODEL.DIFFUSION.UNET_CONFIG``."""
    return dict(
        sample_size=node.SAMPLE_SIZE,
        in_channels=node.IN_CHANNELS,
        out_channels=node.OUT_CHANNELS,
        down_block_types=tuple(node.DOWN_BLOCK_TYPES),
        up_block_types=tuple(node.UP_BLOCK_TYPES),
        block_out_channels=tuple(node.BLOCK_OUT_CHANNELS),
        layers_per_block=node.LAYERS_PER_BLOCK,
        cross_attention_dim=node.CROSS_ATTENTION_DIM,
        attention_head_dim=node.ATTENTION_HEAD_DIM,
        norm_num_groups=node.NORM_NUM_GROUPS,
    )


def vae_kwargs(node) -> dict:
    """diffusers ``AutoencoderKL`` kwargs from ``MODEL.DIFFUSION.VAE_CONFIG``."""
    n = len(node.BLOCK_OUT_CHANNELS)
    return dict(
        in_channels=node.IN_CHANNELS,
        out_channels=node.OUT_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(node.BLOCK_OUT_CHANNELS),
        layers_per_block=node.LAYERS_PER_BLOCK,
        latent_channels=node.LATENT_CHANNELS,
        norm_num_groups=node.NORM_NUM_GROUPS,
        sample_size=node.SAMPLE_SIZE,
        scaling_factor=node.SCALING_FACTOR,
    )


def text_encoder_kwargs(node) -> dict:
    """transformers ``CLIPTextConfig`` kwargs from ``MODEL.DIFFUSION.TEXT_ENCODER_CONFIG``."""
    return dict(
        vocab_size=node.VOCAB_SIZE,
        hidden_size=node.HIDDEN_SIZE,
        intermediate_size=node.INTERMEDIATE_SIZE,
        num_hidden_layers=node.NUM_HIDDEN_LAYERS,
        num_attention_heads=node.NUM_ATTENTION_HEADS,
        max_position_embeddings=node.MAX_POSITION_EMBEDDINGS,
        hidden_act=node.HIDDEN_ACT,
        # CLIP's BPE vocabulary: <|startoftext|> = 49406, <|endoftext|> = 49407 (also the pad).
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def build_unet(cfg) -> nn.Module:
    """Randomly initialised ``UNet2DConditionModel`` of ``cfg.MODEL.DIFFUSION.UNET_CONFIG``."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**unet_kwargs(cfg.MODEL.DIFFUSION.UNET_CONFIG))


def build_vae(cfg) -> nn.Module:
    """Randomly initialised ``AutoencoderKL`` of ``cfg.MODEL.DIFFUSION.VAE_CONFIG``."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_kwargs(cfg.MODEL.DIFFUSION.VAE_CONFIG))


def build_text_encoder(cfg) -> nn.Module:
    """Randomly initialised ``CLIPTextModel`` of ``cfg.MODEL.DIFFUSION.TEXT_ENCODER_CONFIG``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**text_encoder_kwargs(cfg.MODEL.DIFFUSION.TEXT_ENCODER_CONFIG))
    return CLIPTextModel(config)


_RANDOM_BUILDERS = {"unet": build_unet, "vae": build_vae, "text_encoder": build_text_encoder}


def _random_component(cfg, name: str, dtype: Optional[torch.dtype]) -> nn.Module:
    if name == "text_encoder":  # transformers re-initialises every layer after building it
        module = _RANDOM_BUILDERS[name](cfg)
        return module.to(dtype) if dtype is not None else module
    with cast_while_building(dtype):
        return _RANDOM_BUILDERS[name](cfg)


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from a ``.safetensors`` or torch file (``weights_only``).

    Unwraps the ``"state_dict"`` / ``"model"`` nesting used by Lightning/ldm checkpoints.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path!r} does not exist.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    from ..utils.safe_load import UnsafeFileError, safe_torch_load

    try:
        obj = safe_torch_load(path, mmap=True)  # one copy: tensors read from the file on demand
    except UnsafeFileError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the path and the expected format
        raise ValueError(
            f"Could not read {path!r} as a torch checkpoint ({type(e).__name__}: {e}). "
            f"Expected a state dict saved with torch.save, or a .safetensors file."
        ) from e
    while isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, expected a state dict.")
    return obj


def _load_strict(model: nn.Module, state_dict: Dict[str, torch.Tensor], what: str, path: str, dtype=None):
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise ValueError(
            f"{path!r} does not contain a {what} matching the configured architecture: "
            f"{len(missing)} of {len(expected)} weights are missing (e.g. {missing[:3]}). "
            f"Expected {_EXPECTED_FORMATS}, with MODEL.DIFFUSION.*_CONFIG describing its "
            f"architecture."
        )
    bad = [
        (k, tuple(state_dict[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise ValueError(
            f"{path!r}: the {what} weights do not match the configured architecture "
            f"(key, file shape, model shape): {bad[:3]}. Check MODEL.DIFFUSION.*_CONFIG."
        )
    assign_state_dict(model, {k: state_dict[k] for k in expected}, dtype)


def _convert_single_file(component: str, checkpoint: dict, model: nn.Module) -> dict:
    """ldm (CompVis) names -> diffusers/transformers names for one component."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    if component == "unet":
        return convert_ldm_unet_checkpoint(checkpoint, dict(model.config))
    if component == "vae":
        if not any(k.startswith("first_stage_model.") for k in checkpoint):
            return {}  # diffusers' converter would otherwise treat *every* key as a VAE key
        return convert_ldm_vae_checkpoint(checkpoint, dict(model.config))
    # text encoder: transformers >= 5.6 has no "text_model." level in CLIPTextModel, while SD
    # files do (older files may not); accept both.
    out = {}
    has_text_model = any(k.startswith("text_model.") for k in model.state_dict())
    for key, value in checkpoint.items():
        if not key.startswith(_LDM_TEXT_PREFIX):
            continue
        name = key[len(_LDM_TEXT_PREFIX):]
        if name.startswith("text_model.") and not has_text_model:
            name = name[len("text_model."):]
        elif has_text_model and not name.startswith("text_model."):
            name = "text_model." + name
        out[name] = value
    return out


def _describe(cfg, component: str, weights: str) -> dict:
    if weights == "random":
        node = getattr(cfg.MODEL.DIFFUSION, component.upper() + "_CONFIG")
        arch = json.loads(json.dumps(node))  # CfgNode -> plain dict
        return {"weights": "random", "seed": cfg.MODEL.DIFFUSION.RANDOM_INIT_SEED, "arch": arch}
    return {"weights": os.path.abspath(weights), "component": component}


def load_sd_components(
    cfg, components: Iterable[str] = SD_COMPONENTS, dtypes: Optional[Dict[str, torch.dtype]] = None
) -> Dict[str, tuple]:
    """Build the requested SD components from ``cfg.MODEL.DIFFUSION.WEIGHTS``.

    Every component is created in its final dtype with one copy of its weights: random UNet and
    VAE layers are cast one by one as they are built (same values as a float32 build, rounded);
    files are read memory-mapped into a network whose parameters
    are meta placeholders, converting each tensor as it is assigned.

    Args:
        cfg: config with ``MODEL.DIFFUSION``.
        components: subset of ``("unet", "vae", "text_encoder")``.
        dtypes: ``{component: dtype}``; components not named are float32.

    Returns:
        ``{name: (module, source)}``: modules in eval mode, and a JSON-able description of
        the source (what :class:`~odise_ext.diffusion.frozen.FrozenModule` records).
    """
    dtypes = dict(dtypes or {})
    components = tuple(components)
    unknown = set(components) - set(SD_COMPONENTS)
    if unknown:
        raise ValueError(f"Unknown SD components {sorted(unknown)}; expected {SD_COMPONENTS}.")
    weights = cfg.MODEL.DIFFUSION.WEIGHTS
    if not weights:
        raise ValueError(
            f"MODEL.DIFFUSION.WEIGHTS is empty. Set it to {_EXPECTED_FORMATS} "
            "(random weights only for tests and benchmarks)."
        )

    if weights != "random":
        from ..zoo.hub import resolve_diffusion_weights

        weights = resolve_diffusion_weights(weights)  # hf://<org>/<repo>[/<file>] -> the local cached copy
    if weights == "random":
        modules = {}
        # Seeded and isolated from the global RNG: the same frozen weights can be rebuilt later
        # (they are not in checkpoints), and building does not shift other modules' init.
        with torch.random.fork_rng(devices=[]):
            for name in components:
                torch.manual_seed(cfg.MODEL.DIFFUSION.RANDOM_INIT_SEED + SD_COMPONENTS.index(name))
                modules[name] = _random_component(cfg, name, dtypes.get(name))
    elif os.path.isdir(weights):
        modules = _load_diffusers_folder(weights, components, dtypes)
    elif os.path.isfile(weights):
        if not weights.endswith(_SINGLE_FILE_SUFFIXES):
            raise ValueError(f"MODEL.DIFFUSION.WEIGHTS={weights!r}: expected {_EXPECTED_FORMATS}.")
        modules = _load_single_file(cfg, weights, components, dtypes)
    else:
        raise FileNotFoundError(
            f"MODEL.DIFFUSION.WEIGHTS={weights!r} does not exist. Expected {_EXPECTED_FORMATS}."
        )
    return {
        name: (module.eval(), _describe(cfg, name, weights)) for name, module in modules.items()
    }


def _unpickling_error_in(e):
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, pickle.UnpicklingError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _last_line(e):
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else type(e).__name__


def _check_weight_files(path: str, name: str) -> None:
    """A diffusers folder's ``name/`` sub-folder holds weight files and none is empty or
    truncated (else diffusers / transformers say only that the folder is not a save_pretrained
    one, although it is)."""
    from ..engine.weights_file import check_weights_file  # stdlib-only module; lazy: engine imports much

    sub = os.path.join(path, name)
    files = sorted(f for f in os.listdir(sub) if f.endswith((".safetensors", ".bin")))
    if not files:
        example = "model" if name == "text_encoder" else "diffusion_pytorch_model"
        raise FileNotFoundError(
            f"MODEL.DIFFUSION.WEIGHTS={path!r}: {name}/ has config.json but no weights file "
            f"(.safetensors or .bin, e.g. {example}.safetensors)."
        )
    for f in files:
        marker = "\0"
        try:
            check_weights_file(os.path.join(sub, f), key=marker)
        except (OSError, ValueError) as e:
            problem = str(e).replace(f"{marker}={os.path.join(sub, f)}", "").lstrip(" :")
            raise type(e)(
                f"MODEL.DIFFUSION.WEIGHTS={path!r} is a diffusers folder, but its weights file "
                f"{name}/{f} {problem} Re-download or re-save that file."
            ) from None


def _load_diffusers_folder(path: str, components, dtypes) -> Dict[str, nn.Module]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    classes = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
    modules = {}
    for name in components:
        sub = os.path.join(path, name)
        if not os.path.isfile(os.path.join(sub, "config.json")):
            raise FileNotFoundError(
                f"{sub!r} has no config.json. A diffusers Stable Diffusion folder must contain "
                f"unet/, vae/ and text_encoder/ sub-folders, each with config.json and weights."
            )
        _check_weight_files(path, name)
        try:
            kwargs = {"torch_dtype": dtypes[name]} if name in dtypes else {}
            modules[name] = classes[name].from_pretrained(sub, local_files_only=True, **kwargs)
        except (OSError, ValueError, EnvironmentError, pickle.UnpicklingError) as e:
            refused = _unpickling_error_in(e)  # a .bin that weights_only=True refused
            if refused is not None:
                from ..utils.safe_load import unsafe_file_error

                raise unsafe_file_error(sub, f"its weights are not plain tensors ({_last_line(refused)})") from None
            raise ValueError(
                f"Could not load {classes[name].__name__} from {sub!r} ({e}). Expected a "
                f"diffusers/transformers save_pretrained folder."
            ) from e
    return modules


def _load_single_file(cfg, path: str, components, dtypes) -> Dict[str, nn.Module]:
    checkpoint = read_state_dict(path)
    modules = {}
    what = {
        "unet": "UNet (model.diffusion_model.*)",
        "vae": "VAE (first_stage_model.*)",
        "text_encoder": "text encoder (cond_stage_model.transformer.*)",
    }
    for name in components:
        # Placeholders only: the strict load below assigns every parameter from the file.
        with parameters_on_meta():
            model = _RANDOM_BUILDERS[name](cfg)
        converted = _convert_single_file(name, checkpoint, model)
        _load_strict(model, converted, what[name], path, dtypes.get(name, torch.float32))
        modules[name] = model
    return modules
