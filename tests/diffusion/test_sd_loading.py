"""SD weights from a diffusers folder and from a single-file original (CompVis naming) checkpoint.

The single file is written with a diffusers -> ldm key mapping written independently here."""
import re

import pytest
import torch
from safetensors.torch import save_file

from odise_ext.diffusion import DiffusionFeatureExtractor, load_sd_components

from conftest import make_cfg

TINY = "configs/testing/base_tiny_diffusion.yaml"


def tiny_cfg(*opts):
    return make_cfg(TINY, "MODEL.DIFFUSION.PROMPT.NAME", "EmptyPrompt", *opts)


_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_to_ldm(key, layers=2):
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, i, part, j, rest = m.groups()
        i, j = int(i), int(j)
        if kind == "down":
            block = f"input_blocks.{1 + i * (layers + 1) + j}"
        else:
            block = f"output_blocks.{i * (layers + 1) + j}"
        if part == "resnets":
            head, _, tail = rest.partition(".")
            return f"{block}.0.{_UNET_RESNET[head]}.{tail}"
        return f"{block}.1.{rest}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key)
    if m:
        return f"input_blocks.{(int(m.group(1)) + 1) * (layers + 1)}.0.op.{m.group(2)}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        part, j, rest = m.groups()
        if part == "attentions":
            return f"middle_block.1.{rest}"
        head, _, tail = rest.partition(".")
        return f"middle_block.{2 * int(j)}.{_UNET_RESNET[head]}.{tail}"
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for new, old in fixed.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    raise KeyError(key)


def _unet_to_ldm_upsampler(key, has_attention, layers=2):
    i, rest = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key).groups()
    return f"output_blocks.{int(i) * (layers + 1) + layers}.{2 if has_attention else 1}.conv.{rest}"


def _vae_to_ldm(key, value, levels=4):
    value = value.clone()
    part = r"(resnets\.(\d+)|downsamplers\.0|upsamplers\.0)"
    m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\." + part + r"\.(.*)", key)
    if m:
        side, kind, i, part, j, rest = m.groups()
        level = int(i) if kind == "down" else levels - 1 - int(i)
        rest = rest.replace("conv_shortcut", "nin_shortcut")
        if part.startswith("resnets"):
            return f"{side}.{kind}.{level}.block.{j}.{rest}", value
        sampler = "downsample" if kind == "down" else "upsample"
        return f"{side}.{kind}.{level}.{sampler}.{rest}", value
    m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        side, part, j, rest = m.groups()
        if part == "resnets":
            return f"{side}.mid.block_{int(j) + 1}.{rest}", value
        for new, old in _VAE_ATTN.items():
            if rest.startswith(new + "."):
                if value.dim() == 2:  # ldm stores the attention projections as 1x1 convs
                    value = value[:, :, None, None]
                return f"{side}.mid.attn_1.{old}{rest[len(new):]}", value
    key = key.replace("conv_norm_out", "norm_out")
    return key, value


def write_compvis_checkpoint(path, unet, vae, text_encoder):
    sd = {"alphas_cumprod": torch.ones(1000), "model_ema.decay": torch.tensor(0.9999)}
    for key, value in unet.state_dict().items():
        if ".upsamplers." in key:
            i = int(key.split(".")[1])
            ldm = _unet_to_ldm_upsampler(key, hasattr(unet.up_blocks[i], "attentions"))
        else:
            ldm = _unet_to_ldm(key)
        sd["model.diffusion_model." + ldm] = value.clone()
    for key, value in vae.state_dict().items():
        ldm, value = _vae_to_ldm(key, value)
        sd["first_stage_model." + ldm] = value
    for key, value in text_encoder.state_dict().items():
        sd["cond_stage_model.transformer.text_model." + key] = value.clone()
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({"state_dict": sd, "global_step": 0}, str(path))


@pytest.fixture(scope="module")
def reference():
    return {k: m for k, (m, _) in load_sd_components(tiny_cfg()).items()}


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory, reference):
    root = tmp_path_factory.mktemp("sd")
    for name, module in reference.items():
        module.save_pretrained(str(root / "diffusers" / name))
    modules = reference["unet"], reference["vae"], reference["text_encoder"]
    write_compvis_checkpoint(root / "tiny-sd.ckpt", *modules)
    write_compvis_checkpoint(root / "tiny-sd.safetensors", *modules)
    return root


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("source", ["diffusers", "tiny-sd.ckpt", "tiny-sd.safetensors"])
def test_every_format_loads_the_same_weights(sd_dir, reference, source):
    loaded = load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / source)))
    for name, (module, src) in loaded.items():
        _assert_same_weights(module, reference[name])
        assert src["weights"] == str(sd_dir / source)


def test_single_file_and_diffusers_folder_give_same_features(sd_dir):
    x = torch.rand(1, 3, 64, 64)
    feats = {}
    for source in ["diffusers", "tiny-sd.safetensors"]:
        ext = DiffusionFeatureExtractor(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / source)))
        with torch.no_grad():
            feats[source] = ext(x)
    for a, b in zip(feats["diffusers"], feats["tiny-sd.safetensors"]):
        # Same weights (checked exactly above); memory layouts may differ, so allow fp32 noise.
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_missing_or_empty_weights(tmp_path):
    missing = str(tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", missing))
    with pytest.raises(ValueError, match="MODEL.DIFFUSION.WEIGHTS is empty"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", ""))
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(tmp_path / "folder")))
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match="expected a local diffusers folder"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(tmp_path / "weights.txt")))


def test_wrong_naming_is_an_error(tmp_path, reference):
    path = tmp_path / "diffusers-names.ckpt"  # diffusers keys in a single file: not CompVis naming
    torch.save(reference["unet"].state_dict(), str(path))
    unet_msg = r"diffusers-names\.ckpt.*UNet \(model\.diffusion_model\.\*\)"
    with pytest.raises(ValueError, match=unet_msg):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(path)), ["unet"])
    with pytest.raises(ValueError, match=r"VAE \(first_stage_model"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(path)), ["vae"])


def test_architecture_mismatch_is_an_error(sd_dir):
    cfg = tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / "tiny-sd.ckpt"),
                   "MODEL.DIFFUSION.UNET_CONFIG.BLOCK_OUT_CHANNELS", [32, 64, 64, 64])
    with pytest.raises(ValueError, match=r"tiny-sd\.ckpt.*match(ing)? the configured architecture"):
        load_sd_components(cfg, ["unet"])
    cfg = tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / "tiny-sd.ckpt"),
                   "MODEL.DIFFUSION.UNET_CONFIG.CROSS_ATTENTION_DIM", 16)  # same keys, other shapes
    with pytest.raises(ValueError, match=r"tiny-sd\.ckpt.*do not match.*attn2\.to_k\.weight"):
        load_sd_components(cfg, ["unet"])


def test_feature_extractor_keeps_no_text_encoder_and_real_weights(sd_dir):
    """After the build the prompt owns no SD text encoder (it only ran at build time) and the
    UNet the extractor runs holds the file's weights."""
    ext = DiffusionFeatureExtractor(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / "diffusers")))
    assert not any("text_model" in name for name, _ in ext.named_modules())
    assert all(p.device.type == "cpu" for p in ext.parameters())
    _assert_same_weights(ext.unet.module, load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(sd_dir / "diffusers")), ["unet"])["unet"][0])



def _copy_folder(sd_dir, tmp_path):
    import shutil

    dst = tmp_path / "sd"
    shutil.copytree(sd_dir / "diffusers", dst)
    return dst


def test_empty_weight_files_in_a_diffusers_folder_are_named(sd_dir, tmp_path):
    folder = _copy_folder(sd_dir, tmp_path)
    for name in ("unet", "vae", "text_encoder"):  # a folder of empty files: a failed download
        for f in (folder / name).iterdir():
            if f.suffix in (".safetensors", ".bin"):
                f.write_bytes(b"")
    with pytest.raises(ValueError) as e:
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(folder)))
    msg = str(e.value)
    assert "is a diffusers folder" in msg and "unet/diffusion_pytorch_model.safetensors is empty (0 bytes)" in msg
    assert "save_pretrained" not in msg


def test_truncated_weight_file_in_a_diffusers_folder_is_named(sd_dir, tmp_path):
    folder = _copy_folder(sd_dir, tmp_path)
    weights = next(f for f in (folder / "vae").iterdir() if f.suffix == ".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"vae/{weights.name} .*truncated"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(folder)))


def test_diffusers_sub_folder_without_weights_is_named(sd_dir, tmp_path):
    folder = _copy_folder(sd_dir, tmp_path)
    for f in (folder / "text_encoder").iterdir():
        if f.suffix in (".safetensors", ".bin"):
            f.unlink()
    with pytest.raises(FileNotFoundError, match="text_encoder/ has config.json but no weights file"):
        load_sd_components(tiny_cfg("MODEL.DIFFUSION.WEIGHTS", str(folder)))
