# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/criterion.py
"""Set criterion of mask classification (Mask2Former).

Queries are matched one-to-one to targets (Hungarian matching, or an assignment given by the
caller), then every loss *term* is evaluated on every supervised prediction (the final one and,
with deep supervision, each ``aux_outputs`` entry, whose loss names get the suffix ``_{i}``).

Loss terms are modules in ``MASK_FORMER_LOSS_REGISTRY``, built as ``cls(cfg)``, called as
``term(outputs, targets, indices, num_masks) -> {loss_name: scalar}``, and carrying the
``weight_dict`` ({loss_name: weight}) of the names they return. Built in: ``ClassLoss`` (CE
with a down-weighted "no object" class) and ``MaskLoss`` (sigmoid BCE + dice on
importance-sampled points). Other tasks register their own (e.g. a caption grounding loss) and
list them in ``MODEL.MASK_FORMER.LOSSES``.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.projects.point_rend.point_features import get_uncertain_point_coords_with_randomness, point_sample
from detectron2.utils import comm
from detectron2.utils.registry import Registry
from torch import nn

from .matcher import HungarianMatcher, sample_target_points
from ..utils.input_checks import check_all
from ..utils.precision import float32_loss
from .point_features import calculate_uncertainty, pixel_center_coords

__all__ = [
    "MASK_FORMER_LOSS_REGISTRY",
    "build_loss_term",
    "sigmoid_ce_loss",
    "dice_loss",
    "average_num_masks",
    "ClassLoss",
    "MaskLoss",
    "SetCriterion",
    "build_criterion",
]

Indices = List[Tuple[torch.Tensor, torch.Tensor]]

MASK_FORMER_LOSS_REGISTRY = Registry("MASK_FORMER_LOSS")
MASK_FORMER_LOSS_REGISTRY.__doc__ = """
Loss terms of ``SetCriterion``: ``nn.Module`` built as ``cls(cfg)``, with a ``weight_dict``
attribute and ``forward(outputs, targets, indices, num_masks) -> Dict[str, Tensor]``.
"""


def build_loss_term(cfg, name: str) -> nn.Module:
    """Build the loss term registered as ``name``."""
    return MASK_FORMER_LOSS_REGISTRY.get(name)(cfg)


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Sum over masks of the per-mask mean sigmoid BCE, divided by ``num_masks``.

    Args:
        inputs: [N, P] logits; targets: [N, P] in [0, 1].
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return loss.mean(1).sum() / num_masks


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Sum over masks of ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)``, divided by ``num_masks``.

    Args:
        inputs: [N, P] logits (p = sigmoid); targets: [N, P] in [0, 1].
    """
    inputs = inputs.sigmoid()
    numerator = 2 * (inputs * targets).sum(-1)
    denominator = inputs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def average_num_masks(num_local: int, device: torch.device) -> float:
    """Loss normaliser: the number of target masks per process, averaged over all processes
    (so every process divides by the same number), at least 1."""
    world_size = comm.get_world_size()
    if world_size == 1:
        return max(float(num_local), 1.0)  # no device round trip for a single process
    num = torch.as_tensor([float(num_local)], device=device)
    dist.all_reduce(num)
    return torch.clamp(num / world_size, min=1).item()


def _src_permutation(indices: Indices) -> Tuple[torch.Tensor, torch.Tensor]:
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for src, _ in indices])
    return batch_idx, src_idx


@MASK_FORMER_LOSS_REGISTRY.register()
class ClassLoss(nn.Module):
    """Cross-entropy over K + 1 classes; unmatched queries are "no object" (index K) and that
    class is weighted by ``no_object_weight``. Returns ``loss_ce``."""

    @configurable
    def __init__(self, *, num_classes: int, no_object_weight: float, weight: float):
        super().__init__()
        self.num_classes = num_classes
        self.weight_dict = {"loss_ce": weight}
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = no_object_weight
        self.register_buffer("empty_weight", empty_weight)

    @classmethod
    def from_config(cls, cfg):
        mf = cfg.MODEL.MASK_FORMER
        return {
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "no_object_weight": mf.NO_OBJECT_WEIGHT,
            "weight": mf.CLASS_WEIGHT,
        }

    def forward(self, outputs, targets, indices: Indices, num_masks: float) -> Dict[str, torch.Tensor]:
        """outputs["pred_logits"]: [B, Q, K + 1]; targets[b]["labels"]: [T_b] in [0, K)."""
        if "pred_logits" not in outputs:
            raise KeyError(
                "ClassLoss needs outputs['pred_logits'] (a decoder built with mask_classification)"
            )
        logits = outputs["pred_logits"].float()
        if logits.shape[-1] != self.num_classes + 1:
            raise ValueError(
                f"pred_logits has {logits.shape[-1]} classes, "
                f"expected num_classes + 1 = {self.num_classes + 1}"
            )
        batch_idx, src_idx = _src_permutation(indices)
        matched = torch.cat([t["labels"][tgt] for t, (_, tgt) in zip(targets, indices)]).to(logits.device)
        check_all(
            (matched >= 0) & (matched < self.num_classes),
            f"target labels must be in [0, {self.num_classes})",
        )
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        target_classes[batch_idx.to(logits.device), src_idx.to(logits.device)] = matched
        loss = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        return {"loss_ce": loss}


@MASK_FORMER_LOSS_REGISTRY.register()
class MaskLoss(nn.Module):
    """Sigmoid BCE (``loss_mask``) and dice (``loss_dice``) of matched masks on sampled points.

    Points per mask: ``num_points``, of which ``importance_sample_ratio`` are the most
    uncertain among ``oversample_ratio * num_points`` uniform candidates (uncertainty of the
    prediction, no gradient) and the rest uniform; ``num_points == 0`` uses every pixel of the
    prediction instead. Targets are sampled bilinearly at the same normalised points.
    """

    @configurable
    def __init__(
        self,
        *,
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        mask_weight: float,
        dice_weight: float,
    ):
        super().__init__()
        if num_points < 0:
            raise ValueError(f"num_points must be >= 0, got {num_points}")
        if num_points > 0 and oversample_ratio < 1:
            raise ValueError(f"MODEL.MASK_FORMER.OVERSAMPLE_RATIO must be >= 1, got {oversample_ratio}")
        if num_points > 0 and not 0 <= importance_sample_ratio <= 1:
            raise ValueError(
                f"MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO must be in [0, 1], got {importance_sample_ratio}"
            )
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.weight_dict = {"loss_mask": mask_weight, "loss_dice": dice_weight}

    @classmethod
    def from_config(cls, cfg):
        mf = cfg.MODEL.MASK_FORMER
        return {
            "num_points": mf.TRAIN_NUM_POINTS,
            "oversample_ratio": mf.OVERSAMPLE_RATIO,
            "importance_sample_ratio": mf.IMPORTANCE_SAMPLE_RATIO,
            "mask_weight": mf.MASK_WEIGHT,
            "dice_weight": mf.DICE_WEIGHT,
        }

    def forward(self, outputs, targets, indices: Indices, num_masks: float) -> Dict[str, torch.Tensor]:
        """outputs["pred_masks"]: [B, Q, H, W] logits; targets[b]["masks"]: [T_b, H', W'] on the
        same (padded) canvas, any resolution."""
        pred_masks = outputs["pred_masks"]
        batch_idx, src_idx = _src_permutation(indices)
        src = pred_masks[batch_idx.to(pred_masks.device), src_idx.to(pred_masks.device)].float()[
            :, None
        ]  # [N,1,H,W]
        if src.shape[0] == 0:
            zero = pred_masks.sum() * 0.0  # keeps the graph connected for DDP
            return {"loss_mask": zero, "loss_dice": zero}

        with torch.no_grad():
            if self.num_points == 0:
                coords = pixel_center_coords(*src.shape[-2:], device=src.device)[None].expand(
                    src.shape[0], -1, -1
                )
            else:
                coords = get_uncertain_point_coords_with_randomness(
                    src.detach(),
                    calculate_uncertainty,
                    self.num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                )
            # Targets of different images may have different sizes: sample them image by image.
            counts = [len(tgt) for _, tgt in indices]
            labels = [
                sample_target_points(t["masks"][tgt.to(t["masks"].device)].to(src.device), c)
                for t, (_, tgt), c in zip(targets, indices, coords.split(counts))
                if len(tgt)
            ]
            point_labels = torch.cat(labels)
        point_logits = point_sample(src, coords, align_corners=False).squeeze(1)
        return {
            "loss_mask": sigmoid_ce_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }


def build_criterion(cfg) -> "SetCriterion":
    """The set criterion of ``cfg.MODEL.MASK_FORMER`` (Hungarian matcher, ``LOSSES`` terms)."""
    return SetCriterion(cfg)


class SetCriterion(nn.Module):
    """Match, then evaluate every loss term on the final and auxiliary predictions.

    As in Mask2Former, ``forward`` returns the **unweighted** losses and ``weight_dict`` maps
    each of their names (auxiliary ones included) to its weight; the caller sums
    ``losses[k] * weight_dict[k]``.
    """

    @configurable
    def __init__(
        self,
        *,
        matcher: Optional[nn.Module],
        loss_terms: Dict[str, nn.Module],
        deep_supervision: bool,
        num_aux_outputs: int,
    ):
        """
        Args:
            matcher: ``matcher(outputs, targets) -> indices``; may be None if indices are always
                given to ``forward``.
            loss_terms: name -> loss term (see module docstring).
            deep_supervision: also supervise ``outputs["aux_outputs"]``.
            num_aux_outputs: number of auxiliary predictions the decoder returns (decoder
                layers; the prediction from the initial queries is one of them).
        """
        super().__init__()
        if not loss_terms:
            raise ValueError("SetCriterion needs at least one loss term")
        for name, term in loss_terms.items():
            if not isinstance(getattr(term, "weight_dict", None), dict):
                raise TypeError(f"loss term {name!r} has no weight_dict")
        self.matcher = matcher
        self.loss_terms = nn.ModuleDict(loss_terms)
        self.deep_supervision = deep_supervision
        self.num_aux_outputs = num_aux_outputs if deep_supervision else 0
        base = {}
        for term in loss_terms.values():
            base.update(term.weight_dict)
        self.weight_dict = dict(base)
        for i in range(self.num_aux_outputs):
            self.weight_dict.update({f"{k}_{i}": v for k, v in base.items()})

    @classmethod
    def from_config(cls, cfg, matcher=None, loss_terms=None):
        mf = cfg.MODEL.MASK_FORMER
        return {
            "matcher": HungarianMatcher(cfg) if matcher is None else matcher,
            "loss_terms": (
                {n: build_loss_term(cfg, n) for n in mf.LOSSES} if loss_terms is None else loss_terms
            ),
            "deep_supervision": mf.DEEP_SUPERVISION,
            "num_aux_outputs": mf.NUM_DECODER_LAYERS,
        }

    @float32_loss
    def forward(
        self, outputs: Dict, targets: List[Dict], indices: Optional[Sequence] = None
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            outputs: decoder output ("pred_masks" [B, Q, H, W], "pred_logits" [B, Q, K + 1],
                "aux_outputs": list of such dicts, ...).
            targets: per image {"masks": [T, H', W'], "labels": [T], ...}.
            indices: optional fixed assignment, per image (query indices, target indices), used
                for every prediction instead of the matcher.
        Returns:
            unweighted losses, e.g. {"loss_ce", "loss_mask", "loss_dice", "loss_ce_0", ...}; every
            name is a key of ``weight_dict``.
        """
        bs = outputs["pred_masks"].shape[0]
        if len(targets) != bs:
            raise ValueError(f"{len(targets)} targets for a batch of {bs}")
        if indices is not None:
            indices = self._check_indices(indices, outputs["pred_masks"].shape[1], targets)
        elif self.matcher is None:
            raise ValueError("this criterion has no matcher: pass `indices`")
        predictions = [("", outputs)]
        if self.deep_supervision:
            aux = outputs.get("aux_outputs", [])
            if len(aux) != self.num_aux_outputs:
                raise ValueError(
                    f"expected {self.num_aux_outputs} aux_outputs "
                    f"(MODEL.MASK_FORMER.NUM_DECODER_LAYERS), got {len(aux)}"
                )
            predictions += [(f"_{i}", pred) for i, pred in enumerate(aux)]

        num_masks = average_num_masks(sum(len(t["masks"]) for t in targets), outputs["pred_masks"].device)
        losses = {}
        for suffix, pred in predictions:
            pred_indices = indices if indices is not None else self.matcher(pred, targets)
            for name, term in self.loss_terms.items():
                for key, value in term(pred, targets, pred_indices, num_masks).items():
                    if key not in term.weight_dict:
                        raise KeyError(
                            f"loss term {name!r} returned {key!r}, which is not in its weight_dict"
                        )
                    losses[key + suffix] = value
        return losses

    @staticmethod
    def _check_indices(indices, num_queries: int, targets: List[Dict]) -> Indices:
        if len(indices) != len(targets):
            raise ValueError(f"indices for {len(indices)} images, batch has {len(targets)}")
        checked = []
        for b, ((src, tgt), target) in enumerate(zip(indices, targets)):
            src = torch.as_tensor(src, dtype=torch.int64).cpu()
            tgt = torch.as_tensor(tgt, dtype=torch.int64).cpu()
            num_targets = len(target["masks"])
            if src.shape != tgt.shape or src.dim() != 1:
                raise ValueError(f"image {b}: query and target indices must be 1-D of equal length")
            if src.numel() and (
                src.min() < 0 or src.max() >= num_queries or tgt.min() < 0 or tgt.max() >= num_targets
            ):
                raise ValueError(
                    f"image {b}: indices out of range ({num_queries} queries, {num_targets} targets)"
                )
            if src.unique().numel() != src.numel() or tgt.unique().numel() != tgt.numel():
                raise ValueError(f"image {b}: the assignment must be one-to-one")
            checked.append((src, tgt))
        return checked
