"""The released VPD / Meta-Prompts checkpoint formats: their key lists and how each key maps onto
our model (used by :mod:`odise_ext.vpd.checkpoint`).

The key lists (``release_keys/*.tsv.gz``: key, shape, dtype, numel of every tensor) were
read off the released checkpoints, except Meta-Prompts segmentation's (``mp_seg_*``), which are
DERIVED from the public code (``tools/derive_mp_seg_release_keys.py``; no released file was
available to check them against).
"""
import functools
import gzip
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Tuple

__all__ = ["RELEASE_FORMATS", "ReleaseFormat", "release_format", "release_key_shapes"]

_KEY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release_keys")
_EX = "backbone.feature_extractor."
_EXS = "backbone.bottom_up.feature_extractor."  # inside the FPN of the segmentation backbone
# VPD refer's decoder levels (conv*_4 / _3 / _2) = our fusion blocks at strides 32 / 16 / 8.
_REFER_STRIDE = {"4": 32, "3": 16, "2": 8}


@dataclass(frozen=True)
class ReleaseFormat:
    """How one released format maps onto our model.

    name: format id. key_file: its key list in ``release_keys/``. container: top-level key
    of the state dict. unet_prefix / vae_prefix: where the ldm UNet / VAE live in the release.
    rules: (release regex, our replacement) for every other key, tried in order.
    duplicates: {release key: release key it must equal} (stored twice, mapped once).
    dropped: release key prefixes with no counterpart in our model (kept aside for the way back).
    unused: prefixes of our keys absent from the release (built but never used by the format).
    ours_prefix: where our backbone's feature extractor lives.
    """

    name: str
    key_file: str
    container: str
    unet_prefix: str
    vae_prefix: str
    rules: Tuple[Tuple[str, str], ...]
    duplicates: Dict[str, str] = field(default_factory=dict)
    dropped: Tuple[str, ...] = ()
    unused: Tuple[str, ...] = ()
    ours_prefix: str = _EX


_DEPTH_HEAD_RULES = (
    (r"^decoder\.conv_layers\.0\.(weight|bias)$", r"depth_head.conv_layers.\1"),
    (r"^decoder\.conv_layers\.1\.", r"depth_head.conv_layers.norm."),
    (r"^decoder\.deconv_layers\.", r"depth_head.deconv_layers."),
    (r"^last_layer_depth\.", r"depth_head.last_layer_depth."),
)


def _mp_seg(name: str, key_file: str, steps: int = 3) -> ReleaseFormat:
    """Meta-Prompts segmentation (mmcv ``MetaPromptsSeg``): ``steps`` refinement steps, 150 meta
    prompts re-arranging the four levels (``upconv1..4``) for mmseg's UPerHead + auxiliary FCNHead."""
    conv_modules = (  # mmcv ConvModule: ``conv`` (no bias) + ``bn``; ours: Conv2d + ``norm``
        (r"decode_head\.psp_modules\.(\d)\.1\.", r"sem_seg_head.ppm.stages.\1.1."),
        (r"decode_head\.bottleneck\.", "sem_seg_head.ppm_bottleneck."),
        (r"decode_head\.(lateral_convs|fpn_convs)\.(\d)\.", r"sem_seg_head.\1.\2."),
        (r"decode_head\.fpn_bottleneck\.", "sem_seg_head.fpn_bottleneck."),
        (r"auxiliary_head\.convs\.(\d)\.", r"sem_seg_head.aux_head.convs.\1."),
    )
    rules = (
        (r"^t([1-9])$", lambda m: f"{_EX}loop_time_embeds.{int(m.group(1)) - 1}"),
        (r"^meta_prompts$", _EX + "prompt.prompts"),
        (r"^upconv([1-4])\.", lambda m: f"backbone.rearrange.projections.{int(m.group(1)) - 1}."),
        (r"^decode_head\.conv_seg\.", "sem_seg_head.predictor."),
        (r"^auxiliary_head\.conv_seg\.", "sem_seg_head.aux_head.predictor."),
    )
    for release, ours in conv_modules:
        rules += ((f"^{release}conv\\.", ours), (f"^{release}bn\\.", ours + "norm."))
    return ReleaseFormat(
        name=name,
        key_file=key_file,
        container="state_dict",
        unet_prefix="unet.unet.diffusion_model.",
        vae_prefix="encoder_vq.",
        rules=rules,
        # The UNet's output head, stored again for each refinement step that uses it.
        duplicates={
            f"cross_unet_conv{i}.{j}.{p}": f"unet.unet.diffusion_model.out.{j}.{p}"
            for i in range(2, steps + 1) for j in (0, 2) for p in ("weight", "bias")
        },
        # The LatentDiffusion noise schedule (never used).
        dropped=("sd_model.",),
    )


RELEASE_FORMATS = {
    f.name: f
    for f in (
        ReleaseFormat(
            name="vpd_depth",
            key_file="vpd_depth_release_ckpt_keys.tsv.gz",
            container="model",
            unet_prefix="encoder.unet.unet.diffusion_model.",
            vae_prefix="encoder.encoder_vq.",
            rules=(
                (r"^encoder\.gamma$", _EX + "prompt.adapter.gamma"),
                (r"^encoder\.class_embeddings$", _EX + "prompt.class_embeddings"),
                (r"^encoder\.text_adapter\.fc\.", _EX + "prompt.adapter.mlp."),
                (r"^encoder\.layer1\.", "depth_head.layer1."),
                (r"^encoder\.layer2\.0\.", "depth_head.layer2."),
                (r"^encoder\.out_layer\.", "depth_head.out_layer."),
            )
            + _DEPTH_HEAD_RULES,
            # VPD depth never runs the UNet's output head.
            unused=(_EX + "unet.module.conv_norm_out.", _EX + "unet.module.conv_out."),
        ),
        ReleaseFormat(
            name="mp_depth",
            key_file="mp_depth_release_ckpt_keys.tsv.gz",
            container="model",
            unet_prefix="encoder.unet.unet.diffusion_model.",
            vae_prefix="encoder.encoder_vq.",
            rules=(
                (r"^encoder\.t([1-9])$", lambda m: f"{_EX}loop_time_embeds.{int(m.group(1)) - 1}"),
                (r"^encoder\.meta_prompts([1-9])$", lambda m: f"{_EX}prompt.step_prompts.{int(m.group(1)) - 1}"),
                (r"^encoder\.text_adapter([1-9])\.fc\.",
                 lambda m: f"{_EX}prompt.step_mlps.{int(m.group(1)) - 1}."),
                (r"^encoder\.(layer[1-4]|out_layer)\.", r"depth_head.\1."),
            )
            + _DEPTH_HEAD_RULES,
            # The UNet's output head, stored once per refinement step that uses it.
            duplicates={
                f"encoder.cross_unet_conv{i}.{j}.{p}": f"encoder.unet.unet.diffusion_model.out.{j}.{p}"
                for i in (2, 3) for j in (0, 2) for p in ("weight", "bias")
            },
            # Meta-Prompts replaces the time-embedding MLP by the per-step vectors t_i.
            unused=(_EX + "unet.module.time_embedding.",),
        ),
        # VPD ADE20K: the public model with configs/vpd/vpd_ade20k_semseg.yaml (mmseg FPN neck =
        # detectron2's FPN, mmseg FPNHead = FPNHead with SyncBN).
        ReleaseFormat(
            name="vpd_seg",
            key_file="vpd_seg_state_dict_keys.tsv.gz",
            container="state_dict",
            unet_prefix="unet.unet.diffusion_model.",
            vae_prefix="encoder_vq.",
            ours_prefix=_EXS,
            rules=(
                (r"^gamma$", _EXS + "prompt.adapter.gamma"),
                (r"^class_embeddings$", _EXS + "prompt.class_embeddings"),
                (r"^text_adapter\.fc\.", _EXS + "prompt.adapter.mlp."),
                (r"^neck\.lateral_convs\.(\d)\.conv\.", lambda m: f"backbone.fpn_lateral{int(m.group(1)) + 3}."),
                (r"^neck\.fpn_convs\.(\d)\.conv\.", lambda m: f"backbone.fpn_output{int(m.group(1)) + 3}."),
                (r"^decode_head\.scale_heads\.(\d)\.(\d)\.conv\.",
                 lambda m: f"sem_seg_head.p{int(m.group(1)) + 3}.{m.group(2)}."),
                (r"^decode_head\.scale_heads\.(\d)\.(\d)\.bn\.",
                 lambda m: f"sem_seg_head.p{int(m.group(1)) + 3}.{m.group(2)}.norm."),
                (r"^decode_head\.conv_seg\.", "sem_seg_head.predictor."),
            ),
            # The LatentDiffusion noise schedule: never used (VPD adds no noise).
            dropped=("sd_model.",),
        ),
        # VPD RefCOCO: the public model exactly, with configs/vpd/vpd_refcoco.yaml.
        ReleaseFormat(
            name="vpd_refer",
            key_file="vpd_refer_state_dict_keys.tsv.gz",
            container="model",
            unet_prefix="unet.unet.diffusion_model.",
            vae_prefix="encoder_vq.",
            rules=(
                (r"^gamma$", _EX + "prompt.adapter.gamma"),
                (r"^text_adapter\.fc\.", _EX + "prompt.adapter.mlp."),
                (r"^classifier\.conv([12])_([234])\.weight$",
                 lambda m: f"refer_decoder.fuse{_REFER_STRIDE[m.group(2)]}.convs.{int(m.group(1)) - 1}.weight"),
                (r"^classifier\.bn([12])_([234])\.",
                 lambda m: f"refer_decoder.fuse{_REFER_STRIDE[m.group(2)]}.convs.{int(m.group(1)) - 1}.norm."),
                (r"^classifier\.conv1_1\.", "refer_decoder.predictor."),
            ),
        ),
        # Key lists DERIVED from the public code (tools/derive_mp_seg_release_keys.py).
        _mp_seg("mp_seg_ade20k", "mp_seg_ade20k_state_dict_keys.tsv.gz"),
        _mp_seg("mp_seg_cityscapes", "mp_seg_cityscapes_state_dict_keys.tsv.gz"),
        _mp_seg("mp_seg_cityscapes_extra", "mp_seg_cityscapes_extra_state_dict_keys.tsv.gz", steps=1),
    )
}


# ---- key lists ----------------------------------------------------------------------------------
def release_key_shapes(fmt: str) -> "OrderedDict[str, Tuple[int, ...]]":
    """Released key -> shape of format ``fmt``, in checkpoint order (a fresh copy)."""
    return OrderedDict(_read_key_file(release_format(fmt).key_file))


@functools.lru_cache(maxsize=None)
def _read_key_file(key_file: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    # Read once per process: format detection and each conversion ask for the same lists.
    out = []
    with gzip.open(os.path.join(_KEY_DIR, key_file), "rt") as f:
        for line in f:
            if line.startswith("#") or line.startswith("key\t"):
                continue
            key, shape = line.rstrip("\n").split("\t")[:2]
            out.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return tuple(out)


def release_format(fmt: str) -> ReleaseFormat:
    """The :class:`ReleaseFormat` named ``fmt`` (an unknown name is an error listing the known)."""
    if fmt not in RELEASE_FORMATS:
        raise ValueError(f"unknown released format {fmt!r}; known: {sorted(RELEASE_FORMATS)}")
    return RELEASE_FORMATS[fmt]
