"""Base weights named by hub coordinates, resolved offline-first through their libraries.

``MODEL.DIFFUSION.WEIGHTS`` accepts, besides a local file or folder, a Hugging Face reference
written like huggingface_hub's own file-system paths::

    hf://<org>/<repo>[@<revision>]/<file>    one file (e.g. hf://CompVis/stable-diffusion-v-1-3-original/sd-v1-3.ckpt)
    hf://<org>/<repo>[@<revision>]           a diffusers repository (its unet/, vae/, text_encoder/)

resolved by ``huggingface_hub`` (``hf_hub_download`` / ``snapshot_download``): first from the
local cache only (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the library's default), then,
unless ``HF_HUB_OFFLINE`` is set, by the library's download. ``MODEL.CLIP.WEIGHTS`` accepts an
open_clip ``<model>/<pretrained>`` tag (e.g. ``ViT-L-14-336/openai``), resolved through open_clip's
own download and cache functions (its Hugging Face copy first, then its URL cache). An existing
local path always wins. No download code of ours is involved.
"""
import os
from typing import Optional, Tuple

__all__ = ["HF_PREFIX", "is_hf_reference", "parse_hf_reference", "resolve_clip_weights", "resolve_diffusion_weights"]

HF_PREFIX = "hf://"
_DIFFUSERS_PATTERNS = ["model_index.json", "unet/*", "vae/*", "text_encoder/*"]


def is_hf_reference(value) -> bool:
    return isinstance(value, str) and value.startswith(HF_PREFIX)


def parse_hf_reference(value: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``hf://org/repo[@rev][/file]`` -> (repo_id, revision, file or None)."""
    parts = value[len(HF_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"{value!r}: expected hf://<org>/<repo>[@<revision>][/<file>]")
    repo, _, revision = parts[1].partition("@")
    return f"{parts[0]}/{repo}", revision or None, "/".join(parts[2:]) or None


def _hf_cache_dir() -> Optional[str]:
    # read when resolving (not when huggingface_hub was imported), so HF_HOME set later counts too
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def resolve_diffusion_weights(value: str, key: str = "MODEL.DIFFUSION.WEIGHTS") -> str:
    """A local path for ``value``: unchanged unless it is an ``hf://`` reference."""
    if not is_hf_reference(value):
        return value
    from huggingface_hub import hf_hub_download, snapshot_download

    repo_id, revision, filename = parse_hf_reference(value)
    cache = _hf_cache_dir()

    def fetch(local_only):
        if filename:
            return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache, local_files_only=local_only)
        return snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=local_only,
                                 allow_patterns=_DIFFUSERS_PATTERNS)

    try:
        return fetch(True)
    except Exception as cached_miss:  # noqa: BLE001  (the library's "not in the cache" errors vary by version)
        where = cache or "the default Hugging Face cache"
        if _offline():
            raise FileNotFoundError(
                f"{key}={value}: not in the Hugging Face cache ({where}) and HF_HUB_OFFLINE is set "
                f"({type(cached_miss).__name__}). Fetch it where you are online with `huggingface-cli download "
                f"{repo_id}{' ' + filename if filename else ''}`, or set {key} to a local file or folder."
            ) from None
        try:
            return fetch(False)
        except Exception as e:  # noqa: BLE001
            lines = [line for line in str(e).splitlines() if line.strip()]
            raise FileNotFoundError(
                f"{key}={value}: not in the Hugging Face cache ({where}) and the download failed "
                f"({type(e).__name__}: {lines[0] if lines else ''}). Check the repository id and file name, log in "
                f"(`huggingface-cli login`) for gated repositories, or set {key} to a local file or folder."
            ) from None


def _open_clip_tag(value: str) -> Optional[Tuple[str, str]]:
    if not isinstance(value, str) or value.count("/") != 1 or os.path.exists(value):
        return None
    import open_clip

    model, tag = value.split("/")
    return (model, tag) if (model, tag) in set(open_clip.list_pretrained()) else None


def resolve_clip_weights(value: str, key: str = "MODEL.CLIP.WEIGHTS") -> str:
    """A local path for ``value``: unchanged unless it is an open_clip ``<model>/<pretrained>`` tag."""
    pair = _open_clip_tag(value)
    if pair is None:
        return value
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(*pair)
    path = _cached_open_clip(cfg)  # no network: its Hugging Face copy, then its URL cache
    if path:
        return path
    if _offline():
        raise FileNotFoundError(f"{key}={value}: not in open_clip's caches and HF_HUB_OFFLINE is set; fetch it "
                                f"where you are online, or set {key} to a local file")
    try:
        path = download_pretrained(cfg)
    except Exception as e:  # noqa: BLE001
        raise FileNotFoundError(
            f"{key}={value}: open_clip could not fetch it ({type(e).__name__}: {e}); download it where you are "
            f"online (open_clip.create_model_and_transforms('{pair[0]}', pretrained='{pair[1]}')) or set {key} "
            "to a local file"
        ) from None
    if not path:
        raise FileNotFoundError(f"{key}={value}: open_clip knows no download for this tag")
    return path


def _cached_open_clip(cfg) -> Optional[str]:
    """open_clip's cached file for a pretrained config, looked up without network access."""
    from huggingface_hub import try_to_load_from_cache

    hub = cfg.get("hf_hub", "").strip("/")  # "<org>/<repo>[/<folder>]"
    if hub:
        parts = hub.split("/")
        repo_id, folder = "/".join(parts[:2]), "/".join(parts[2:])
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo_id, f"{folder}/{name}" if folder else name, cache_dir=_hf_cache_dir())
            if isinstance(found, str):
                return found
    url = cfg.get("url", "")
    if url:  # open_clip's download_pretrained_from_url default cache
        local = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if os.path.isfile(local):
            return local
    return None
