"""Mask-classification losses of the PNG adapter and decoder heads.

PNG has one query per phrase, so query i is assigned to phrase i (no Hungarian matching): the
assignment is handed to Mask2Former's :class:`SetCriterion` as fixed ``indices``. Padding
queries of a batch are unassigned; their "no object" class weight is 0 so they add nothing.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..mask2former.criterion import ClassLoss, MaskLoss, SetCriterion

__all__ = ["build_phrase_criterion", "fixed_indices", "phrase_targets", "weighted_losses"]


def build_phrase_criterion(loss_cfg, num_classes: int, num_aux_outputs: int) -> SetCriterion:
    """Class CE + point-sampled BCE/dice, with ``num_aux_outputs`` deep-supervision outputs.

    Args:
        loss_cfg: ``MODEL.PNG.LOSS``.
        num_classes: K phrase categories.
        num_aux_outputs: auxiliary predictions per forward (0: only the final one).
    """
    terms = {
        # Padding queries are never phrases: their target ("no object") gets weight 0.
        "ClassLoss": ClassLoss(num_classes=num_classes, no_object_weight=0.0, weight=loss_cfg.CLASS_WEIGHT),
        "MaskLoss": MaskLoss(
            num_points=loss_cfg.NUM_POINTS,
            oversample_ratio=loss_cfg.OVERSAMPLE_RATIO,
            importance_sample_ratio=loss_cfg.IMPORTANCE_SAMPLE_RATIO,
            mask_weight=loss_cfg.MASK_WEIGHT,
            dice_weight=loss_cfg.DICE_WEIGHT,
        ),
    }
    return SetCriterion(
        matcher=None,
        loss_terms=terms,
        deep_supervision=num_aux_outputs > 0,
        num_aux_outputs=num_aux_outputs,
    )


def fixed_indices(num_phrases: Sequence[int]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Query i <-> phrase i for the P_b phrases of each image."""
    return [(torch.arange(n), torch.arange(n)) for n in num_phrases]


def phrase_targets(batched_inputs: Sequence[dict], canvas: Tuple[int, int], device) -> List[Dict[str, torch.Tensor]]:
    """Per image ``{"masks": [P, H, W] float on the padded canvas, "labels": [P]}``.

    Args:
        batched_inputs: mapper outputs with ``gt_masks`` [P, h, w] and ``phrase_classes`` [P].
        canvas: (H, W) of the padded image batch (masks are zero-padded bottom/right).
    """
    targets = []
    for x in batched_inputs:
        masks = x["gt_masks"].to(device=device, dtype=torch.float32)
        h, w = masks.shape[-2:]
        if h > canvas[0] or w > canvas[1]:
            raise ValueError(f"GT masks {h}x{w} are larger than the image canvas {canvas}")
        masks = F.pad(masks, (0, canvas[1] - w, 0, canvas[0] - h))
        targets.append({"masks": masks, "labels": x["phrase_classes"].to(device)})
    return targets


def weighted_losses(losses: Dict[str, torch.Tensor], weight_dict: Dict[str, float], prefix: str, scale: float):
    """``{loss_<prefix>_<rest>: value * weight * scale}`` (criterion names start with "loss_")."""
    return {
        "loss_" + prefix + "_" + name[len("loss_"):]: value * weight_dict[name] * scale
        for name, value in losses.items()
    }
