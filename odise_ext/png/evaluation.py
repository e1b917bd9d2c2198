# Adapted from BCV-Uniandes/PNG@c4258ec2d3d6cc79735c5454b8184ff83996741c:baseline/test_net.py
"""Panoptic Narrative Grounding evaluation: the official Average Recall (González et al., ICCV 2021).

Each grounded noun phrase (>= 1 segment id) is one unit. With a predicted soft mask p in [0, 1]
and the GT mask t (union of the phrase's segments)::

    IoU = sum(p * t) / sum(p + t - p * t)                 # NaN when both masks are empty
    thresholds = np.arange(0, 1, 1e-5)                    # 100000 values, 0 included, 1 excluded
    recall(th) = mean(IoU >= th)                          # over all units of a subset
    AR = sum_i (thresholds[i + 1] - thresholds[i]) * recall(thresholds[i])   # consecutive pairs

AR is reported overall and for things / stuff (category of the phrase's last segment) and
singulars / plurals (>= 2 segments), with acc@0.5 = mean(IoU > 0.5) (strictly greater, as the
official ``test_net.py`` computes it). Note the consequences of the official grid: an IoU of 0
still scores 1e-5 (recall(0) = 1) and a perfect IoU scores 0.99999, while a NaN IoU (both masks
empty) counts in the mean but passes no threshold, not even 0 -- exactly as ``NaN >= th`` does in
the official code.

Two protocols decide at which resolution p and t are compared (``MODEL.PNG.EVAL_PROTOCOL``):

* ``"official"`` (BCV-Uniandes/PNG): the GT union mask is resized from the image's size to
  256x256 and back to (height, width), both times bilinear, ``align_corners=False``, no
  antialias (torchvision ``Resize`` on tensors, torch 1.7); the prediction takes the same round
  trip (the baseline's predictions are 256x256 to begin with). GT and prediction are therefore
  soft, and a small segment can vanish (both empty -> NaN). The baseline's integer instance masks
  were also rounded to {0, 1} at 256x256 by torchvision's integer path; our predictions are
  probabilities and stay soft.
* ``"exact"``: the GT at the image's original resolution, untouched; the prediction bilinear to
  it. The GT is never empty there, so the IoU is never NaN.
"""
import logging
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.evaluation import DatasetEvaluator
from tabulate import tabulate

from ..utils.gather import gather_on_main

__all__ = ["PNG_EVAL_PROTOCOLS", "PNGEvaluator", "average_recall", "mask_iou", "png_metrics", "official_round_trip"]

logger = logging.getLogger(__name__)

# The official code builds the grid as np.arange(0, 1, 0.00001); building it the same way keeps
# its floating-point values (and so ties at grid points) identical.
_THRESHOLDS = np.arange(0, 1, 0.00001)
_SUBSETS = ("", "_things", "_stuff", "_singulars", "_plurals")
# Side of the official evaluation's intermediate masks (torchvision Resize((256, 256))).
OFFICIAL_MASK_SIZE = 256
PNG_EVAL_PROTOCOLS = ("official", "exact")


def average_recall(ious) -> float:
    """Official PNG Average Recall of a pool of IoUs, as a fraction in [0, 1).

    Equal to the official double loop (the same products, summed in the same order, so the
    result matches bit for bit) in O(n log n + 1e5) instead of O(n * 1e5). A NaN IoU (both masks
    empty) counts as a unit that passes no threshold, as in the official code.

    Args:
        ious: sequence / array / tensor of n >= 1 IoUs in [0, 1] or NaN.
    Raises:
        ValueError: empty input (the official code divides by zero) or values outside [0, 1].
    """
    if torch.is_tensor(ious):
        ious = ious.detach().cpu()
    ious = np.asarray(ious, dtype=np.float64).ravel()
    if ious.size == 0:
        raise ValueError("average_recall needs at least one IoU; got an empty list (no phrase to evaluate)")
    finite = ious[~np.isnan(ious)]
    if (finite < 0).any() or (finite > 1).any():
        raise ValueError(f"IoUs must lie in [0, 1] (or be NaN); got min {finite.min()}, max {finite.max()}")
    n = ious.size
    # recall(th) = #(iou >= th) / n; searchsorted 'left' counts the IoUs strictly below th.
    num_above = finite.size - np.searchsorted(np.sort(finite), _THRESHOLDS, side="left")
    recall = num_above / n
    terms = np.abs(_THRESHOLDS[1:] - _THRESHOLDS[:-1]) * recall[:-1]
    # cumsum adds left to right like the official Python loop (np.sum would pair terms).
    return float(np.cumsum(terms)[-1])


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Soft IoU of mask pairs: sum(p*t) / sum(p + t - p*t) over the last two dims.

    Args:
        pred: [P, H, W] values in [0, 1].
        gt: [P, H, W] values in [0, 1].
    Returns:
        [P] float64 IoUs; NaN where both masks are empty (0 / 0, as the official code computes it).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(gt.shape)}")
    p, t = pred.double().flatten(1), gt.double().flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    return inter / union


def official_round_trip(masks: torch.Tensor, size) -> torch.Tensor:
    """The official evaluation's resizing: [P, h, w] float -> 256x256 -> ``size`` (H, W), both
    bilinear with ``align_corners=False`` and no antialias. Returns [P, H, W] float32."""
    masks = masks.float()[None]
    small = F.interpolate(masks, size=(OFFICIAL_MASK_SIZE,) * 2, mode="bilinear", align_corners=False)
    return F.interpolate(small, size=tuple(size), mode="bilinear", align_corners=False)[0]


def png_metrics(ious, is_thing, plural) -> Dict[str, float]:
    """AR and acc@0.5 (in percent) overall and per subset.

    Args:
        ious, is_thing, plural: [N] arrays over all evaluated phrases.
    Returns:
        keys ``AR``, ``AR_things``, ``AR_stuff``, ``AR_singulars``, ``AR_plurals`` and the same
        with ``acc@0.5``; a subset without phrases gets NaN (logged).
    """
    ious = np.asarray(ious, np.float64)
    is_thing, plural = np.asarray(is_thing, bool), np.asarray(plural, bool)
    selections = dict(zip(_SUBSETS, (np.ones_like(is_thing), is_thing, ~is_thing, ~plural, plural)))
    results = OrderedDict()
    for suffix, sel in selections.items():
        if sel.any():
            results["AR" + suffix] = 100.0 * average_recall(ious[sel])
        else:
            logger.warning(f"PNG evaluation: no phrase in subset '{suffix[1:] or 'all'}'; its AR is NaN")
            results["AR" + suffix] = float("nan")
    for suffix, sel in selections.items():
        # NaN > 0.5 is False: a NaN IoU is a miss, as in the official accuracy_score.
        results["acc@0.5" + suffix] = 100.0 * float(np.mean(ious[sel] > 0.5)) if sel.any() else float("nan")
    return results


class PNGEvaluator(DatasetEvaluator):
    """Official PNG Average Recall over a dataset of narratives.

    ``process`` reads, per narrative, the ground truth from the mapper's input
    (:class:`odise_ext.png.dataset_mapper.PNGDatasetMapper` at test time: ``gt_masks``
    [P, H, W] bool at the original resolution, ``plural`` [P], ``is_thing`` [P]) and the
    prediction ``output["png_masks"]``: [P, h, w] float probabilities in [0, 1], one per phrase in
    input order, at any resolution. Masks are compared at the GT's (H, W) under the chosen
    protocol (see the module docstring).
    """

    @configurable
    def __init__(self, dataset_name: str = "", *, protocol: str = "official", distributed: bool = True):
        """
        Args:
            dataset_name: for the log only.
            protocol: "official" or "exact" (``MODEL.PNG.EVAL_PROTOCOL``).
            distributed: gather results from all processes in :meth:`evaluate`.
        """
        if protocol not in PNG_EVAL_PROTOCOLS:
            raise ValueError(f"PNG evaluation protocol must be one of {PNG_EVAL_PROTOCOLS}, got {protocol!r}")
        self._dataset_name = dataset_name
        self._protocol = protocol
        self._distributed = distributed
        self.reset()

    @classmethod
    def from_config(cls, cfg, dataset_name="", distributed=True, output_dir=None):
        """``output_dir`` is accepted for the shared evaluator signature; nothing is written."""
        return {
            "dataset_name": dataset_name,
            "protocol": cfg.MODEL.PNG.EVAL_PROTOCOL,
            "distributed": distributed,
        }

    def reset(self):
        self._ious, self._is_thing, self._plural = [], [], []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            where = f"image {inp.get('image_id')} (narrative #{inp.get('narrative_index')})"
            if "png_masks" not in out:
                raise KeyError(f"{where}: the model output has no 'png_masks'")
            gt, pred = inp["gt_masks"].cpu(), out["png_masks"].detach().float().cpu()
            if pred.dim() != 3 or pred.shape[0] != gt.shape[0]:
                raise ValueError(
                    f"{where}: png_masks has shape {tuple(pred.shape)}; "
                    f"expected [{gt.shape[0]}, H, W] (one per phrase)"
                )
            if pred.numel() and not (torch.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1):
                raise ValueError(f"{where}: png_masks must be probabilities in [0, 1] (got logits?)")
            size = tuple(gt.shape[-2:])
            if "height" in inp and (int(inp["height"]), int(inp["width"])) != size:
                raise ValueError(
                    f"{where}: gt_masks are {size[1]}x{size[0]} but the image is {inp['width']}x{inp['height']}; "
                    "the evaluator needs the GT at the original resolution (PNGDatasetMapper with is_train=False)"
                )
            if self._protocol == "official":
                pred, gt = official_round_trip(pred, size), official_round_trip(gt, size)
            else:
                pred = F.interpolate(pred[None], size=size, mode="bilinear", align_corners=False)[0]
            self._ious.append(mask_iou(pred, gt).numpy())
            self._is_thing.append(inp["is_thing"].cpu().numpy().astype(bool))
            self._plural.append(inp["plural"].cpu().numpy().astype(bool))

    def evaluate(self):
        """``{"png": {AR, AR_things, AR_stuff, AR_singulars, AR_plurals, acc@0.5...}}`` in percent,
        on the main process (other processes return ``{}``)."""
        parts = gather_on_main(self._ious, self._is_thing, self._plural, distributed=self._distributed)
        if parts is None:
            return {}
        ious, is_thing, plural = (np.concatenate(p) if p else np.zeros(0) for p in parts)
        if ious.size == 0:
            logger.warning(f"PNGEvaluator on {self._dataset_name!r}: no phrase was evaluated")
            return {}
        results = png_metrics(ious, is_thing, plural)
        counts = {"": ious.size, "_things": is_thing.sum(), "_stuff": (~is_thing).sum(),
                  "_singulars": (~plural).sum(), "_plurals": plural.sum()}
        rows = [(s[1:] or "all", results["AR" + s], results["acc@0.5" + s], int(counts[s])) for s in _SUBSETS]
        num_nan = int(np.isnan(ious).sum())
        logger.info(
            f"PNG evaluation on {self._dataset_name!r}, {self._protocol} protocol "
            f"({num_nan} phrase(s) with empty prediction and GT, IoU NaN):\n"
            + tabulate(rows, headers=["subset", "AR", "acc@0.5", "#phrases"], floatfmt=".2f", tablefmt="pipe")
        )
        return {"png": results}
