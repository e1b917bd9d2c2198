"""Config keys of Meta-Prompts (``MODEL.META_PROMPTS.*``): the learnable prompts and the feature
re-arrangement against them. The refinement loop is the diffusion extractor's
(``MODEL.DIFFUSION.REFINE``); the depth head's keys are the dense ones (``MODEL.DEPTH_HEAD``)."""
from detectron2.config import CfgNode as CN

from ..config import register_config


@register_config
def add_meta_prompts_config(cfg):
    """Add ``MODEL.META_PROMPTS`` to ``cfg`` in place."""
    m = cfg.MODEL.META_PROMPTS = CN()
    # Number of learnable meta prompts (Meta-Prompts: 150 segmentation, 50 depth).
    m.NUM_PROMPTS = 150
    # Pass the meta prompts through an MLP (Linear-GELU-Linear) before use (Meta-Prompts depth).
    m.MLP = False
    # One set of meta prompts (and MLP) per refinement step, MODEL.DIFFUSION.REFINE.LOOPS of them
    # (Meta-Prompts depth); False shares one set by every step (Meta-Prompts segmentation).
    m.PER_STEP = False

    a = m.REARRANGE = CN()
    # Feature re-arrangement of MODEL.BACKBONE.NAME "MetaPromptsBackbone" (Meta-Prompts
    # segmentation): every level -> bilinear xUPSAMPLE -> conv3x3-GN-ReLU to the prompt width -> dot
    # product with each prompt -> one channel per prompt (Meta-Prompts depth does its own inside
    # MetaPromptsDepthHead).
    # Upsampling factor before the projection (Meta-Prompts segmentation: 2).
    a.UPSAMPLE = 2
    # GroupNorm groups of the projection.
    a.GN_GROUPS = 16
    return cfg
