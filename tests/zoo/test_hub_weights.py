"""hf:// SD weights and open_clip tags resolve offline from a Hugging Face cache written here in
the library's real layout (models--<org>--<name>/{blobs,refs/main,snapshots/<commit>/...})."""
import hashlib
import os
import sys

import pytest
import torch

from odise_ext.diffusion import load_sd_components
from odise_ext.zoo.hub import resolve_clip_weights, resolve_diffusion_weights

from zoo_fixtures import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "diffusion"))
from test_sd_loading import tiny_cfg, write_compvis_checkpoint  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_hf_cache(cache, repo_id, filename, data: bytes):
    """Write ``data`` as ``filename`` of ``repo_id`` into a Hugging Face hub cache, as the library does."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    link = repo / "snapshots" / COMMIT / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_sd_single_file_from_the_hf_cache_loads_offline(hf_cache, tmp_path):
    reference = {k: m for k, (m, _) in load_sd_components(tiny_cfg()).items()}
    ckpt = tmp_path / "tiny.ckpt"
    write_compvis_checkpoint(ckpt, reference["unet"], reference["vae"], reference["text_encoder"])
    link = put_in_hf_cache(hf_cache, "CompVis/stable-diffusion-v-1-3-original", "sd-v1-3.ckpt", ckpt.read_bytes())
    ref = "hf://CompVis/stable-diffusion-v-1-3-original/sd-v1-3.ckpt"
    assert resolve_diffusion_weights(ref) == str(link)
    loaded = load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", ref))
    for name, (module, source) in loaded.items():
        assert source["weights"] == str(link)  # the frozen weights record the resolved file
        theirs = reference[name].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in module.state_dict().items()), name


def test_missing_from_the_cache_offline_is_a_clear_error(hf_cache):
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE.*huggingface-cli download"):
        resolve_diffusion_weights("hf://CompVis/stable-diffusion-v-1-3-original/sd-v1-3.ckpt")
    with pytest.raises(ValueError, match="expected hf://<org>/<repo>"):
        resolve_diffusion_weights("hf://just-a-name")
    assert resolve_diffusion_weights("local/sd.ckpt") == "local/sd.ckpt"  # not a hub reference: unchanged


def test_open_clip_tag_resolves_from_open_clips_hf_copy(hf_cache):
    from open_clip.pretrained import get_pretrained_cfg

    hub = get_pretrained_cfg("ViT-L-14-336", "openai")["hf_hub"].strip("/")  # the library's own record
    link = put_in_hf_cache(hf_cache, hub, "open_clip_pytorch_model.bin", b"weights")
    assert resolve_clip_weights("ViT-L-14-336/openai") == str(link)
    assert resolve_clip_weights("clip/vit.bin") == "clip/vit.bin"  # not a known tag: a path, unchanged
