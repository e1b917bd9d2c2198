"""ODISE's released checkpoints: renaming them into odise-ext's module layout.

ODISE checkpoints (``odise_label_coco_50e.pth`` etc.) hold ``{"model": state_dict}``; the
"full" variants also carry the frozen SD and CLIP weights, which odise-ext reloads from their own
sources and never stores, so they are dropped here. The renames (ODISE -> ours):

==================================================  ===================================================
``backbone.feature_extractor.<captioner param>``     ``backbone.feature_extractor.prompt.<param>``
``backbone.feature_projections.<i>.0.<rest>``        ``backbone.feature_projections.<i>.<rest>``
``sem_seg_head.predictor.post_mask_embed.<rest>``    ``sem_seg_head.predictor.class_embed.post_mask_embed.<rest>``
``category_head.<null_embed|text_proj...>``          ``sem_seg_head.predictor.class_embed.category_head.<...>``
``criterion.empty_weight``                           dropped (rebuilt from the config)
==================================================  ===================================================
Every other key (pixel decoder, transformer decoder) keeps its name.
"""
import re
from typing import Dict, List, Tuple

from ..checkpoint.convert import rename_key

__all__ = ["FROZEN_PREFIXES", "convert_odise_state_dict", "odise_key_to_ours"]

# Frozen weights inside ODISE's *full* checkpoints: SD (ldm_extractor) and its three CLIP copies.
FROZEN_PREFIXES = (
    "backbone.feature_extractor.ldm_extractor.",
    "backbone.feature_extractor.clip.",
    "clip_head.clip.",
    "category_head.clip.",
)
_DROPPED = ("criterion.",)
_RULES = [
    (re.compile(r"^backbone\.feature_extractor\.(alpha_cond|alpha_cond_time_embed|clip_project\.|time_embed_project\.)"),
     r"backbone.feature_extractor.prompt.\1"),
    (re.compile(r"^backbone\.feature_projections\.(\d+)\.0\."), r"backbone.feature_projections.\1."),
    (re.compile(r"^sem_seg_head\.predictor\.post_mask_embed\."), "sem_seg_head.predictor.class_embed.post_mask_embed."),
    (re.compile(r"^category_head\."), "sem_seg_head.predictor.class_embed.category_head."),
]


def odise_key_to_ours(key: str) -> str:
    """Our name of an ODISE (trainable) key."""
    return rename_key(key, _RULES) or key


def convert_odise_state_dict(state_dict: Dict) -> Tuple[Dict, List[str], List[str]]:
    """
    Returns:
        (converted state dict, dropped frozen keys, dropped other keys).
    """
    out, frozen, other = {}, [], []
    for key, value in state_dict.items():
        if key.startswith(FROZEN_PREFIXES):
            frozen.append(key)
        elif key.startswith(_DROPPED):
            other.append(key)
        else:
            new = odise_key_to_ours(key)
            if new in out:
                raise ValueError(f"two ODISE keys map to '{new}' (second: '{key}')")
            out[new] = value
    return out, frozen, other
