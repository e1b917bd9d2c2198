"""Panoptic Narrative Grounding evaluation: the official Average Recall (González et al., ICCV 2021).

Each grounded noun phrase (>= 1 segment id) is one unit. With a predicted soft mask p in [0, 1]
and the GT mask t (union of the phrase's segments)::

    IoU = sum(p * t) / sum(p + t - p * t)
    thresholds = np.arange(0, 1, 1e-5)                    # 100000 values, 0 included, 1 excluded
    recall(th) = mean(IoU >= th)                          # over all units of a subset
    AR = sum_i (thresholds[i + 1] - thresholds[i]) * recall(thresholds[i])   # consecutive pairs

AR is reported overall and for things / stuff (category of the phrase's last segment) and
singulars / plurals (>= 2 segments), with acc@0.5 = mean(IoU > 0.5) (strictly greater, as the
official ``test_net.py`` computes it). Note the consequences of the official grid: an IoU of 0
still scores 1e-5 (recall(0) = 1) and a perfect IoU scores 0.99999.
"""
import itertools
import logging
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from tabulate import tabulate

__all__ = ["PNGEvaluator", "average_recall", "mask_iou", "png_metrics"]

logger = logging.getLogger(__name__)

# The official code builds the grid as np.arange(0, 1, 0.00001); building it the same way keeps
# its floating-point values (and so ties at grid points) identical.
_THRESHOLDS = np.arange(0, 1, 0.00001)
_SUBSETS = ("", "_things", "_stuff", "_singulars", "_plurals")


def average_recall(ious) -> float:
    """Official PNG Average Recall of a pool of IoUs, as a fraction in [0, 1).

    Equal to the official double loop (the same products, summed in the same order, so the
    result matches bit for bit) in O(n log n + 1e5) instead of O(n * 1e5).

    Args:
        ious: sequence / array / tensor of n >= 1 IoUs in [0, 1].
    Raises:
        ValueError: empty input (the official code divides by zero), NaN, or values outside [0, 1].
    """
    if torch.is_tensor(ious):
        ious = ious.detach().cpu()
    ious = np.asarray(ious, dtype=np.float64).ravel()
    if ious.size == 0:
        raise ValueError("average_recall needs at least one IoU; got an empty list (no phrase to evaluate)")
    if np.isnan(ious).any() or (ious < 0).any() or (ious > 1).any():
        raise ValueError(f"IoUs must lie in [0, 1] (no NaN); got min {ious.min()}, max {ious.max()}")
    n = ious.size
    # recall(th) = #(iou >= th) / n; searchsorted 'left' counts the IoUs strictly below th.
    num_above = n - np.searchsorted(np.sort(ious), _THRESHOLDS, side="left")
    recall = num_above / n
    terms = np.abs(_THRESHOLDS[1:] - _THRESHOLDS[:-1]) * recall[:-1]
    # cumsum adds left to right like the official Python loop (np.sum would pair terms).
    return float(np.cumsum(terms)[-1])


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Soft IoU of mask pairs: sum(p*t) / sum(p + t - p*t) over the last two dims.

    Args:
        pred: [P, H, W] values in [0, 1].
        gt: [P, H, W] values in [0, 1] (binary for PNG ground truth).
    Returns:
        [P] float64 IoUs. A pair with an empty union scores 0 (the official code yields NaN
        there, which never passes a threshold: the same AR).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(gt.shape)}")
    p, t = pred.double().flatten(1), gt.double().flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    return torch.where(union > 0, inter / union.clamp_min(1e-300), torch.zeros_like(inter))


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
        results["acc@0.5" + suffix] = 100.0 * float(np.mean(ious[sel] > 0.5)) if sel.any() else float("nan")
    return results


class PNGEvaluator(DatasetEvaluator):
    """Official PNG Average Recall over a dataset of narratives.

    ``process`` reads, per narrative, the ground truth from the mapper's input
    (:class:`odise_ext.png.dataset_mapper.PNGDatasetMapper`: ``gt_masks`` [P, H, W] bool,
    ``plural`` [P], ``is_thing`` [P], ``height``/``width``) and the prediction
    ``output["png_masks"]``: [P, h, w] float probabilities in [0, 1], one per phrase in input
    order, at any resolution. Both are resized to the evaluation resolution (predictions
    bilinearly, GT by nearest neighbour) before the IoU.
    """

    @configurable
    def __init__(
        self,
        dataset_name: str = "",
        *,
        eval_resolution: int = 0,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: for the log only.
            eval_resolution: side of the square evaluation resolution; 0 = each image's original
                (height, width), as in the official evaluation (``MODEL.PNG.EVAL_RESOLUTION``).
            distributed: gather results from all processes in :meth:`evaluate`.
        """
        if eval_resolution < 0:
            raise ValueError(f"eval_resolution must be >= 0 (0 = original image size), got {eval_resolution}")
        self._dataset_name = dataset_name
        self._eval_resolution = int(eval_resolution)
        self._distributed = distributed
        self.reset()

    @classmethod
    def from_config(cls, cfg, dataset_name="", distributed=True, output_dir=None):
        """``output_dir`` is accepted for the shared evaluator signature; nothing is written."""
        return {
            "dataset_name": dataset_name,
            "eval_resolution": cfg.MODEL.PNG.EVAL_RESOLUTION,
            "distributed": distributed,
        }

    def reset(self):
        self._ious, self._is_thing, self._plural = [], [], []

    def _eval_size(self, inp, gt):
        if self._eval_resolution:
            return (self._eval_resolution, self._eval_resolution)
        return (int(inp.get("height", gt.shape[-2])), int(inp.get("width", gt.shape[-1])))

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            where = f"image {inp.get('image_id')} (narrative #{inp.get('narrative_index')})"
            if "png_masks" not in out:
                raise KeyError(f"{where}: the model output has no 'png_masks'")
            gt, pred = inp["gt_masks"], out["png_masks"].detach().float().cpu()
            if pred.dim() != 3 or pred.shape[0] != gt.shape[0]:
                raise ValueError(
                    f"{where}: png_masks has shape {tuple(pred.shape)}; "
                    f"expected [{gt.shape[0]}, H, W] (one per phrase)"
                )
            if pred.numel() and not (torch.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1):
                raise ValueError(f"{where}: png_masks must be probabilities in [0, 1] (got logits?)")
            size = self._eval_size(inp, gt)
            pred = F.interpolate(pred[None], size=size, mode="bilinear", align_corners=False)[0]
            gt = F.interpolate(gt[None].float(), size=size, mode="nearest-exact")[0]
            self._ious.append(mask_iou(pred, gt).numpy())
            self._is_thing.append(inp["is_thing"].cpu().numpy().astype(bool))
            self._plural.append(inp["plural"].cpu().numpy().astype(bool))

    def evaluate(self):
        """``{"png": {AR, AR_things, AR_stuff, AR_singulars, AR_plurals, acc@0.5...}}`` in percent,
        on the main process (other processes return ``{}``)."""
        parts = (self._ious, self._is_thing, self._plural)
        if self._distributed:
            comm.synchronize()
            gathered = [comm.gather(p, dst=0) for p in parts]
            if not comm.is_main_process():
                return {}
            parts = [list(itertools.chain(*g)) for g in gathered]
        ious, is_thing, plural = (np.concatenate(p) if p else np.zeros(0) for p in parts)
        if ious.size == 0:
            logger.warning(f"PNGEvaluator on {self._dataset_name!r}: no phrase was evaluated")
            return {}
        results = png_metrics(ious, is_thing, plural)
        counts = {"": ious.size, "_things": is_thing.sum(), "_stuff": (~is_thing).sum(),
                  "_singulars": (~plural).sum(), "_plurals": plural.sum()}
        rows = [(s[1:] or "all", results["AR" + s], results["acc@0.5" + s], int(counts[s])) for s in _SUBSETS]
        side = self._eval_resolution
        resolution = f"{side}x{side}" if side else "original image size"
        logger.info(
            f"PNG evaluation on {self._dataset_name!r} at {resolution}:\n"
            + tabulate(rows, headers=["subset", "AR", "acc@0.5", "#phrases"], floatfmt=".2f", tablefmt="pipe")
        )
        return {"png": results}
