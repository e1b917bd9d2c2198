"""Meta-Prompts' released checkpoint formats: how each key maps onto our model (registered with
:mod:`odise_ext.checkpoint`; their key lists are in ``keys/``).

=================  ===========================  ===============================================
format             container                    model
=================  ===========================  ===============================================
mp_depth           ``{'model': state_dict}``    Meta-Prompts NYUv2 / KITTI depth (``metaprompts_*_depth``)
mp_seg_*           ``{'state_dict': ..., ...}`` Meta-Prompts ADE20K / Cityscapes (mmcv runner):
                                                ``metaprompts_*_semseg``
=================  ===========================  ===============================================

``mp_depth``'s key list was read off the released checkpoint. Meta-Prompts segmentation: formats
``mp_seg_ade20k`` / ``mp_seg_cityscapes`` / ``mp_seg_cityscapes_extra`` for
``configs/vpd/metaprompts_{ade20k,cityscapes,cityscapes_extra}_semseg.yaml``; the first two have
the same keys and are told apart by the classifier's shape. Their key lists are DERIVED from the
public code (``tools/derive_mp_seg_release_keys.py``), not read off a released file (none was
available to check them against).
"""
import os

from ...checkpoint.formats import EXTRACTOR_PREFIX as _EX
from ...checkpoint.formats import ReleaseFormat, register_release_format
from ...vpd.release.formats import DEPTH_HEAD_RULES

__all__ = ["METAPROMPTS_FORMATS"]

_KEY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys")


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
        key_dir=_KEY_DIR,
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


METAPROMPTS_FORMATS = tuple(
    register_release_format(f)
    for f in (
        ReleaseFormat(
            name="mp_depth",
            key_file="mp_depth_release_ckpt_keys.tsv.gz",
            key_dir=_KEY_DIR,
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
            + DEPTH_HEAD_RULES,
            # The UNet's output head, stored once per refinement step that uses it.
            duplicates={
                f"encoder.cross_unet_conv{i}.{j}.{p}": f"encoder.unet.unet.diffusion_model.out.{j}.{p}"
                for i in (2, 3) for j in (0, 2) for p in ("weight", "bias")
            },
            # Meta-Prompts replaces the time-embedding MLP by the per-step vectors t_i.
            unused=(_EX + "unet.module.time_embedding.",),
        ),
        # Key lists DERIVED from the public code (tools/derive_mp_seg_release_keys.py).
        _mp_seg("mp_seg_ade20k", "mp_seg_ade20k_state_dict_keys.tsv.gz"),
        _mp_seg("mp_seg_cityscapes", "mp_seg_cityscapes_state_dict_keys.tsv.gz"),
        _mp_seg("mp_seg_cityscapes_extra", "mp_seg_cityscapes_extra_state_dict_keys.tsv.gz", steps=1),
    )
)
