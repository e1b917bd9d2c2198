# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/matcher.py
"""Hungarian matching of predicted masks to ground-truth masks (Mask2Former).

Cost of pairing query q with target t:
``cost_class * (-p_q(c_t)) + cost_mask * BCE(q, t) + cost_dice * dice(q, t)``, where the mask
terms are computed on ``num_points`` random points shared by all queries and targets of the
image (or on every pixel of the prediction when ``num_points == 0``).

Random stream: like Mask2Former's ``HungarianMatcher``, one ``torch.rand(1, num_points, 2)``
is drawn per image, in batch order, *including images without targets*, so that a seeded run
consumes the generator exactly as Mask2Former does and every later draw (the criterion's point
sampling, the next iteration's matching) sees the same numbers.
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.projects.point_rend.point_features import point_sample
from scipy.optimize import linear_sum_assignment
from torch import nn

from .point_features import pixel_center_coords

__all__ = ["HungarianMatcher", "batch_sigmoid_ce_cost", "batch_dice_cost", "sample_target_points"]

Indices = List[Tuple[torch.Tensor, torch.Tensor]]


def batch_dice_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice loss.

    Args:
        inputs: [N, P] logits; targets: [M, P] in [0, 1].
    Returns:
        [N, M], ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` with p = sigmoid(inputs).
    """
    inputs = inputs.sigmoid()
    numerator = 2 * inputs @ targets.T
    denominator = inputs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_ce_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise mean sigmoid binary cross-entropy.

    Args:
        inputs: [N, P] logits; targets: [M, P] in [0, 1].
    Returns:
        [N, M], mean over points of BCE(inputs[n], targets[m]).
    """
    num_points = inputs.shape[1]
    # BCE(x, t) = t * BCE(x, 1) + (1 - t) * BCE(x, 0): one matmul per term instead of N*M losses.
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / num_points


def sample_target_points(masks: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
    """Sample [T, H, W] target masks (bool or float) at [1 or T, P, 2] points -> [T, P] float."""
    masks = masks.to(point_coords.dtype)[:, None]
    coords = point_coords.expand(masks.shape[0], -1, -1)
    return point_sample(masks, coords, align_corners=False).squeeze(1)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to targets minimising the total matching cost."""

    @configurable
    def __init__(
        self, *, cost_class: float = 1.0, cost_mask: float = 1.0, cost_dice: float = 1.0, num_points: int = 0
    ):
        """
        Args:
            cost_class, cost_mask, cost_dice: weights of the cost terms.
            num_points: points shared by all masks of an image; 0 = every prediction pixel.
        """
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        if num_points < 0:
            raise ValueError(f"num_points must be >= 0, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @classmethod
    def from_config(cls, cfg):
        mf = cfg.MODEL.MASK_FORMER
        return {
            "cost_class": mf.CLASS_WEIGHT,
            "cost_mask": mf.MASK_WEIGHT,
            "cost_dice": mf.DICE_WEIGHT,
            "num_points": mf.TRAIN_NUM_POINTS,
        }

    def _point_coords(self, pred_masks: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        if self.num_points == 0:
            return pixel_center_coords(*pred_masks.shape[-2:], device=pred_masks.device)[None]
        return torch.rand(1, self.num_points, 2, device=pred_masks.device, generator=generator)

    def cost_matrix(
        self,
        pred_masks: torch.Tensor,
        target_masks: torch.Tensor,
        pred_logits: Optional[torch.Tensor] = None,
        target_labels: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        point_coords: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Matching cost of one image.

        Args:
            pred_masks: [Q, H, W] logits; target_masks: [T, H', W'] on the same canvas.
            pred_logits: [Q, K + 1] (optional); target_labels: [T] in [0, K).
            point_coords: optional [1, P, 2] normalised (x, y) points; drawn here (from
                ``generator``) when None.
        Returns:
            [Q, T] float32.
        """
        pred_masks = pred_masks.float()
        if point_coords is None:
            point_coords = self._point_coords(pred_masks, generator)
        tgt = sample_target_points(target_masks, point_coords)
        out = point_sample(
            pred_masks[:, None], point_coords.expand(pred_masks.shape[0], -1, -1), align_corners=False
        ).squeeze(1)
        cost = self.cost_mask * batch_sigmoid_ce_cost(out, tgt) + self.cost_dice * batch_dice_cost(out, tgt)
        if self.cost_class != 0:
            if pred_logits is None or target_labels is None:
                raise ValueError("cost_class != 0 needs pred_logits and target labels")
            num_classes = pred_logits.shape[-1] - 1
            if target_labels.numel() and (target_labels.min() < 0 or target_labels.max() >= num_classes):
                raise ValueError(f"target labels must be in [0, {num_classes}), got {target_labels.tolist()}")
            prob = pred_logits.float().softmax(-1)
            # -p(target class): the constant 1 of 1 - p does not change the assignment.
            cost = cost - self.cost_class * prob[:, target_labels]
        return cost

    @torch.no_grad()
    def forward(
        self,
        outputs: Dict[str, torch.Tensor],
        targets: List[Dict[str, torch.Tensor]],
        generator: Optional[torch.Generator] = None,
    ) -> Indices:
        """
        Args:
            outputs: "pred_masks" [B, Q, H, W] and (when cost_class != 0) "pred_logits"
                [B, Q, K + 1].
            targets: per image {"masks": [T, H', W'], "labels": [T]}.
            generator: optional RNG for the sampled points.
        Returns:
            per image (query indices, target indices), int64, of length min(Q, T), sorted by
            query index.
        """
        pred_masks = outputs["pred_masks"]
        if len(targets) != pred_masks.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {pred_masks.shape[0]}")
        pred_logits = outputs.get("pred_logits")
        indices = []
        with torch.autocast(device_type=pred_masks.device.type, enabled=False):
            for b, target in enumerate(targets):
                # Drawn before the empty check: Mask2Former draws for target-less images too.
                point_coords = self._point_coords(pred_masks[b], generator)
                if target["masks"].shape[0] == 0:
                    empty = torch.empty(0, dtype=torch.int64)
                    indices.append((empty, empty.clone()))
                    continue
                cost = self.cost_matrix(
                    pred_masks[b],
                    target["masks"],
                    None if pred_logits is None else pred_logits[b],
                    target.get("labels"),
                    point_coords=point_coords,
                )
                if not torch.isfinite(cost).all():
                    raise FloatingPointError(
                        f"matching cost of image {b} is not finite (NaN/inf predictions?)"
                    )
                src, tgt = linear_sum_assignment(cost.cpu().numpy())
                indices.append(
                    (torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(tgt, dtype=torch.int64))
                )
        return indices

    def __repr__(self):
        return (
            f"{type(self).__name__}(cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points})"
        )
