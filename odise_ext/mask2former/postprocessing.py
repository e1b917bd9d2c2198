# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/maskformer_model.py
"""Mask-classification outputs of one image -> semantic / panoptic / instance results.

Pure functions: everything dataset-specific (number of classes, which classes are things) is
passed in by the caller, which reads it from its metadata at construction time. ``mask_pred`` is
either a [Q, H, W] tensor or a :class:`~.full_resolution.FullResolutionMasks`, read in chunks of
rows: no [Q, H, W] intermediate is then held at full resolution, only the outputs. Panoptic and
instance results are the same bitwise (per-pixel decisions per chunk, integer areas, sums over
the whole output); semantic scores of an image in several chunks are within ~1 ulp (1e-6), as
the matrix product's blocking follows the chunk's width.
"""

from typing import Collection, Dict, List, Tuple, Union

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances

from .full_resolution import FullResolutionMasks, MaskSource, as_full_resolution

__all__ = ["semantic_inference", "panoptic_inference", "instance_inference"]


Masks = Union[torch.Tensor, FullResolutionMasks]


def _source(mask_cls: torch.Tensor, mask_pred: Masks) -> MaskSource:
    src = as_full_resolution(mask_pred)
    if mask_cls.dim() != 2 or len(src.shape) != 3 or mask_cls.shape[0] != src.shape[0]:
        raise ValueError(
            f"expected mask_cls [Q, K+1] and mask_pred [Q, H, W] of one image, got "
            f"{tuple(mask_cls.shape)} and {tuple(src.shape)}"
        )
    return src


def semantic_inference(mask_cls: torch.Tensor, mask_pred: Masks) -> torch.Tensor:
    """Per-pixel class scores ``sum_q softmax(mask_cls)[q, k] * sigmoid(mask_pred)[q]``.

    Args:
        mask_cls: [Q, K + 1] class logits (last = no object, dropped after the softmax).
        mask_pred: [Q, H, W] mask logits.
    Returns:
        [K, H, W].
    """
    src = _source(mask_cls, mask_pred)
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    out = None
    for r0, r1, chunk in src.row_chunks():
        part = torch.einsum("qc,qhw->chw", probs, chunk.sigmoid())
        if r0 == 0 and r1 == src.shape[1]:
            return part
        if out is None:
            out = part.new_empty((part.shape[0], *src.shape[1:]))
        out[:, r0:r1] = part
    return out


def panoptic_inference(
    mask_cls: torch.Tensor,
    mask_pred: Masks,
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

    Won pixels are disjoint, so one pass over the row chunks records each pixel's winner and
    whether it is inside the winner's own mask, with integer areas per query; the segments are
    then decided in query order (as the reference loop does) and painted by lookup.

    Args:
        mask_cls: [Q, K + 1] class logits; mask_pred: [Q, H, W] mask logits.
        num_classes: K (contiguous ids 0..K-1).
        thing_ids: contiguous ids of thing classes.
    Returns:
        panoptic_seg [H, W] int32 (0 = void, segments numbered from 1), and segments_info:
        list of {"id", "isthing", "category_id"}.
    """
    src = _source(mask_cls, mask_pred)
    if mask_cls.shape[-1] != num_classes + 1:
        raise ValueError(
            f"mask_cls has {mask_cls.shape[-1]} columns, expected num_classes + 1 = {num_classes + 1}"
        )
    thing_ids = set(thing_ids)
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes = scores[keep], labels[keep]
    cur = src.select(keep)

    h, w = src.shape[-2:]
    device = mask_cls.device
    segments_info: List[Dict] = []
    n = cur.shape[0]
    if n == 0:
        return torch.zeros((h, w), dtype=torch.int32, device=device), segments_info

    # winner [H, W]: the winning query, or n where the pixel is outside the winner's own mask
    winner = torch.empty((h, w), dtype=torch.long, device=device)
    won_area = torch.zeros(n, dtype=torch.long, device=device)
    own_area = torch.zeros(n, dtype=torch.long, device=device)
    for r0, r1, chunk in cur.row_chunks():
        probs = chunk.sigmoid()
        ids = (cur_scores.view(-1, 1, 1) * probs).argmax(0)
        own = probs >= 0.5
        del probs
        own_area += own.flatten(1).sum(1)
        won_area += torch.bincount(ids.flatten(), minlength=n)
        winner[r0:r1] = ids.masked_fill_(~own.gather(0, ids[None])[0], n)
    kept_area = torch.bincount(winner.flatten(), minlength=n + 1)[:n]

    segment_of = [0] * (n + 1)
    current_segment_id = 0
    stuff_memory: Dict[int, int] = {}
    for k, (pred_class, mask_area, original_area, kept) in enumerate(
        zip(cur_classes.tolist(), won_area.tolist(), own_area.tolist(), kept_area.tolist())
    ):
        isthing = pred_class in thing_ids
        if mask_area == 0 or original_area == 0 or kept == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing and pred_class in stuff_memory:
            segment_of[k] = stuff_memory[pred_class]
            continue
        current_segment_id += 1
        segment_of[k] = current_segment_id
        if not isthing:
            stuff_memory[pred_class] = current_segment_id
        segments_info.append({"id": current_segment_id, "isthing": isthing, "category_id": pred_class})
    lookup = torch.tensor(segment_of, dtype=torch.int32, device=device)
    return lookup[winner], segments_info


def instance_inference(
    mask_cls: torch.Tensor,
    mask_pred: Masks,
    *,
    test_topk_per_image: int,
    thing_ids: Collection[int],
    panoptic_on: bool,
) -> Instances:
    """Top-k (query, class) pairs as instances.

    Score = class probability x mean foreground probability inside the binary mask
    (``mask_pred > 0``). With ``panoptic_on`` (a model trained on panoptic data) only thing
    classes are kept.

    The output masks [N, H, W] are filled chunk by chunk, first with the foreground
    probabilities inside the binary masks (summed per mask, as the reference sums them), then
    binarised in place (a probability inside is >= 0.5 > 0); boxes come from the rows and
    columns each chunk touches.

    Args:
        mask_cls: [Q, K + 1] class logits; mask_pred: [Q, H, W] mask logits.
        test_topk_per_image: number of (query, class) pairs kept before filtering.
        thing_ids: contiguous ids of thing classes.
    Returns:
        ``Instances`` of image size (H, W) with pred_masks [N, H, W] (float 0/1), pred_boxes
        (tight boxes of the masks), scores [N], pred_classes [N].
    """
    src = _source(mask_cls, mask_pred)
    num_queries, num_classes = mask_cls.shape[0], mask_cls.shape[1] - 1
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]
    labels = torch.arange(num_classes, device=mask_cls.device).repeat(num_queries)
    k = min(test_topk_per_image, scores.numel())
    scores_per_image, topk_indices = scores.flatten().topk(k, sorted=False)
    labels_per_image = labels[topk_indices]
    query_indices = torch.div(topk_indices, num_classes, rounding_mode="floor")
    cur = src.select(query_indices)

    if panoptic_on:
        things = torch.as_tensor(sorted(set(thing_ids)), dtype=labels_per_image.dtype, device=mask_cls.device)
        keep = torch.isin(labels_per_image, things)
        scores_per_image, labels_per_image, cur = scores_per_image[keep], labels_per_image[keep], cur.select(keep)

    n, h, w = cur.shape
    result = Instances((h, w))
    masks = torch.empty((n, h, w), dtype=torch.float32, device=mask_cls.device)
    cols_any = torch.zeros((n, w), dtype=torch.bool, device=mask_cls.device)
    rows_any = torch.empty((n, h), dtype=torch.bool, device=mask_cls.device)
    for r0, r1, chunk in cur.row_chunks():
        binary = chunk > 0
        cols_any |= binary.any(1)
        rows_any[:, r0:r1] = binary.any(2)
        # sigmoid(mask_pred) * pred_masks, the reference's product, into the output rows
        torch.mul(chunk.sigmoid(), binary, out=masks[:, r0:r1])
    mask_sums = masks.flatten(1).sum(1)
    result.pred_masks = masks.gt_(0)
    result.pred_boxes = _tight_boxes(rows_any, cols_any)
    mask_scores = mask_sums / (result.pred_masks.flatten(1).sum(1) + 1e-6)
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
    return result


def _tight_boxes(rows_any: torch.Tensor, cols_any: torch.Tensor) -> Boxes:
    """Boxes (x0, y0, x1, y1), x1 / y1 exclusive, of masks touching rows_any [N, H] and
    cols_any [N, W]; all zero for an empty mask (as ``BitMasks.get_bounding_boxes``)."""
    n, h = rows_any.shape
    w = cols_any.shape[1]
    boxes = torch.zeros(n, 4, dtype=torch.float32)
    if n == 0:
        return Boxes(boxes)
    device = rows_any.device
    ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
    nonempty = rows_any.any(1) & cols_any.any(1)
    first_y = torch.where(rows_any, ys, h).amin(1)
    last_y = torch.where(rows_any, ys, -1).amax(1)
    first_x = torch.where(cols_any, xs, w).amin(1)
    last_x = torch.where(cols_any, xs, -1).amax(1)
    found = torch.stack([first_x, first_y, last_x + 1, last_y + 1], 1).float().cpu()
    boxes[nonempty.cpu()] = found[nonempty.cpu()]
    return Boxes(boxes)
