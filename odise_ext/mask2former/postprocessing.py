# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/maskformer_model.py
"""Mask-classification outputs of one image -> semantic / panoptic / instance results.

Pure functions: everything dataset-specific (number of classes, which classes are things) is
passed in by the caller, which reads it from its metadata at construction time.
"""

from typing import Collection, Dict, List, Tuple

import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks, Instances

__all__ = ["semantic_inference", "panoptic_inference", "instance_inference"]


def _check(mask_cls: torch.Tensor, mask_pred: torch.Tensor):
    if mask_cls.dim() != 2 or mask_pred.dim() != 3 or mask_cls.shape[0] != mask_pred.shape[0]:
        raise ValueError(
            f"expected mask_cls [Q, K+1] and mask_pred [Q, H, W] of one image, got "
            f"{tuple(mask_cls.shape)} and {tuple(mask_pred.shape)}"
        )


def semantic_inference(mask_cls: torch.Tensor, mask_pred: torch.Tensor) -> torch.Tensor:
    """Per-pixel class scores ``sum_q softmax(mask_cls)[q, k] * sigmoid(mask_pred)[q]``.

    Args:
        mask_cls: [Q, K + 1] class logits (last = no object, dropped after the softmax).
        mask_pred: [Q, H, W] mask logits.
    Returns:
        [K, H, W].
    """
    _check(mask_cls, mask_pred)
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    return torch.einsum("qc,qhw->chw", probs, mask_pred.sigmoid())


def panoptic_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    num_classes: int,
    thing_ids: Collection[int],
    object_mask_threshold: float,
    overlap_threshold: float,
) -> Tuple[torch.Tensor, List[Dict]]:
    """Mask2Former panoptic merging.

    Queries predicting "no object" or scoring ``<= object_mask_threshold`` are dropped. Each
    pixel goes to the remaining query maximising ``score * sigmoid(mask)``; a query keeps the
    pixels it wins where its own mask probability is >= 0.5, and is dropped when that is less
    than ``overlap_threshold`` of its own mask (prob >= 0.5). Stuff queries of the same class
    are merged into one segment; thing queries each become a segment.

    Args:
        mask_cls: [Q, K + 1] class logits; mask_pred: [Q, H, W] mask logits.
        num_classes: K (contiguous ids 0..K-1).
        thing_ids: contiguous ids of thing classes.
    Returns:
        panoptic_seg [H, W] int32 (0 = void, segments numbered from 1), and segments_info:
        list of {"id", "isthing", "category_id"}.
    """
    _check(mask_cls, mask_pred)
    if mask_cls.shape[-1] != num_classes + 1:
        raise ValueError(
            f"mask_cls has {mask_cls.shape[-1]} columns, expected num_classes + 1 = {num_classes + 1}"
        )
    thing_ids = set(thing_ids)
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes = scores[keep], labels[keep]
    # Indexing copies, so the sigmoid can run in place: one [Q', H, W] copy, not two of [Q, H, W].
    cur_masks = mask_pred[keep].sigmoid_()

    h, w = mask_pred.shape[-2:]
    panoptic_seg = torch.zeros((h, w), dtype=torch.int32, device=mask_pred.device)
    segments_info: List[Dict] = []
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info

    cur_mask_ids = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
    current_segment_id = 0
    stuff_memory: Dict[int, int] = {}
    for k in range(cur_classes.shape[0]):
        pred_class = int(cur_classes[k])
        isthing = pred_class in thing_ids
        won = cur_mask_ids == k
        own = cur_masks[k] >= 0.5
        mask = won & own
        mask_area = int(won.sum())
        original_area = int(own.sum())
        if mask_area == 0 or original_area == 0 or int(mask.sum()) == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing and pred_class in stuff_memory:
            panoptic_seg[mask] = stuff_memory[pred_class]
            continue
        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        if not isthing:
            stuff_memory[pred_class] = current_segment_id
        segments_info.append({"id": current_segment_id, "isthing": isthing, "category_id": pred_class})
    return panoptic_seg, segments_info


def instance_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    test_topk_per_image: int,
    thing_ids: Collection[int],
    panoptic_on: bool,
) -> Instances:
    """Top-k (query, class) pairs as instances.

    Score = class probability x mean foreground probability inside the binary mask
    (``mask_pred > 0``). With ``panoptic_on`` (a model trained on panoptic data) only thing
    classes are kept.

    Args:
        mask_cls: [Q, K + 1] class logits; mask_pred: [Q, H, W] mask logits.
        test_topk_per_image: number of (query, class) pairs kept before filtering.
        thing_ids: contiguous ids of thing classes.
    Returns:
        ``Instances`` of image size (H, W) with pred_masks [N, H, W] (float 0/1), pred_boxes
        (tight boxes of the masks), scores [N], pred_classes [N].
    """
    _check(mask_cls, mask_pred)
    num_queries, num_classes = mask_cls.shape[0], mask_cls.shape[1] - 1
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]
    labels = torch.arange(num_classes, device=mask_cls.device).repeat(num_queries)
    k = min(test_topk_per_image, scores.numel())
    scores_per_image, topk_indices = scores.flatten().topk(k, sorted=False)
    labels_per_image = labels[topk_indices]
    query_indices = torch.div(topk_indices, num_classes, rounding_mode="floor")
    mask_pred = mask_pred[query_indices]

    if panoptic_on:
        things = torch.as_tensor(sorted(set(thing_ids)), dtype=labels_per_image.dtype, device=mask_cls.device)
        keep = torch.isin(labels_per_image, things)
        scores_per_image, labels_per_image, mask_pred = scores_per_image[keep], labels_per_image[keep], mask_pred[keep]

    result = Instances(tuple(mask_pred.shape[-2:]))
    binary = mask_pred > 0
    result.pred_masks = binary.float()
    result.pred_boxes = BitMasks(binary).get_bounding_boxes()
    del binary
    # mask_pred is a copy (advanced indexing above): sigmoid and product in place, the same
    # arithmetic as sigmoid(mask_pred) * pred_masks without two more [N, H, W] tensors.
    inside = mask_pred.sigmoid_().mul_(result.pred_masks)
    mask_scores = inside.flatten(1).sum(1) / (result.pred_masks.flatten(1).sum(1) + 1e-6)
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
    return result
