"""VPD's released checkpoint formats: how each key maps onto our model (registered with
:mod:`odise_ext.checkpoint`; their key lists, read off the released files, are in ``keys/``).

===========  ===========================  ===============================================
format       container                    model
===========  ===========================  ===============================================
vpd_depth    ``{'model': state_dict}``    VPD NYUv2 depth (``configs/vpd/vpd_nyu_depth.yaml``)
vpd_seg      ``{'state_dict': ..., ...}`` VPD ADE20K (mmcv runner): ``vpd_ade20k_semseg``
vpd_refer    ``{'model': state_dict}``    VPD RefCOCO (``configs/vpd/vpd_refcoco.yaml``)
===========  ===========================  ===============================================
"""
import os

from ...checkpoint.formats import EXTRACTOR_PREFIX as _EX
from ...checkpoint.formats import ReleaseFormat, register_release_format

__all__ = ["DEPTH_HEAD_RULES", "VPD_FORMATS"]

_KEY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys")
_EXS = "backbone.bottom_up.feature_extractor."  # inside the FPN of the segmentation backbone
# VPD refer's decoder levels (conv*_4 / _3 / _2) = our fusion blocks at strides 32 / 16 / 8.
_REFER_STRIDE = {"4": 32, "3": 16, "2": 8}

# VPD's GLPDepth decoder (``decoder.*``, ``last_layer_depth``), reused by Meta-Prompts' depth model.
DEPTH_HEAD_RULES = (
    (r"^decoder\.conv_layers\.0\.(weight|bias)$", r"depth_head.conv_layers.\1"),
    (r"^decoder\.conv_layers\.1\.", r"depth_head.conv_layers.norm."),
    (r"^decoder\.deconv_layers\.", r"depth_head.deconv_layers."),
    (r"^last_layer_depth\.", r"depth_head.last_layer_depth."),
)


VPD_FORMATS = tuple(
    register_release_format(f)
    for f in (
        ReleaseFormat(
            name="vpd_depth",
            key_file="vpd_depth_release_ckpt_keys.tsv.gz",
            key_dir=_KEY_DIR,
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
            + DEPTH_HEAD_RULES,
            # VPD depth never runs the UNet's output head.
            unused=(_EX + "unet.module.conv_norm_out.", _EX + "unet.module.conv_out."),
        ),
        # VPD ADE20K: the public model with configs/vpd/vpd_ade20k_semseg.yaml (mmseg FPN neck =
        # detectron2's FPN, mmseg FPNHead = FPNHead with SyncBN).
        ReleaseFormat(
            name="vpd_seg",
            key_file="vpd_seg_state_dict_keys.tsv.gz",
            key_dir=_KEY_DIR,
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
            key_dir=_KEY_DIR,
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
    )
)
