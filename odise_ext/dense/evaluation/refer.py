"""Referring-segmentation evaluation (RefCOCO/+/g), as reported by LAVT and VPD.

Per sample (one sentence): I = |pred ∧ gt|, U = |pred ∨ gt|, IoU = I / U; a sample whose
prediction and ground truth are both empty (U = 0) scores ``empty_iou`` (0 in LAVT/VPD's
``test.py``, the default). Dataset scores, in percent:
    oIoU     = Σ I / Σ U                        (overall IoU, cumulative over samples)
    mIoU     = mean over samples of IoU
    prec@X   = fraction of samples with IoU >= X, X in 0.5, 0.6, 0.7, 0.8, 0.9
Where the masks are compared (network input size or original resolution) is the mapper's
choice (``MODEL.REFER_HEAD.EVAL_AT_INPUT_SIZE``).
"""
import logging
from collections import OrderedDict

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.evaluation import DatasetEvaluator

from ...utils.gather import gather_on_main

__all__ = ["ReferEvaluator", "refer_iou_stats", "refer_metrics", "PRECISION_THRESHOLDS"]

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _binary_mask(x, threshold):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == bool:
        return x
    return x > threshold


def refer_iou_stats(pred, gt, threshold=0.5):
    """Intersection and union of one sample.

    Args:
        pred (ndarray or Tensor): [H, W] bool mask or foreground probability.
        gt (ndarray or Tensor): [H, W] bool or 0/1 mask.
        threshold (float): a non-bool ``pred`` (or ``gt``) is foreground where > threshold.

    Returns:
        (int, int): I, U.
    """
    p, g = _binary_mask(pred, threshold), _binary_mask(gt, threshold)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(
            f"referring masks must be [H, W] of the same size, got prediction {p.shape} and "
            f"ground truth {g.shape}"
        )
    return int(np.logical_and(p, g).sum()), int(np.logical_or(p, g).sum())


def refer_metrics(intersections, unions, empty_iou=0.0):
    """Dataset metrics (percent) from per-sample I and U lists; see the module docstring.

    ``empty_iou``: IoU of a sample with U = 0 (0.0: LAVT/VPD; 1.0: a perfect match). The oIoU of
    a dataset whose every sample has U = 0 is 0/0 in the reference; it is reported as
    ``100 * empty_iou`` here.
    """
    if empty_iou not in (0.0, 1.0):
        raise ValueError(f"empty_iou must be 0.0 (LAVT/VPD) or 1.0, got {empty_iou}")
    inter = np.asarray(intersections, dtype=np.float64)
    union = np.asarray(unions, dtype=np.float64)
    if inter.shape != union.shape or inter.size == 0:
        raise ValueError("need the same, non-zero number of intersections and unions")
    iou = np.where(union > 0, inter / np.maximum(union, 1), empty_iou)
    results = OrderedDict()
    results["oIoU"] = float(100.0 * inter.sum() / union.sum()) if union.sum() > 0 else 100.0 * empty_iou
    results["mIoU"] = 100.0 * float(iou.mean())
    for t in PRECISION_THRESHOLDS:
        results[f"prec@{t}"] = 100.0 * float(np.mean(iou >= t))
    return results


class ReferEvaluator(DatasetEvaluator):
    """oIoU / mIoU / precision@X of referring masks.

    ``process`` takes inputs carrying ``"ref_mask"`` ([H, W] bool or 0/1) and outputs carrying
    ``"ref_mask"`` ([H, W] bool, or a foreground probability thresholded at ``threshold``).
    ``evaluate`` returns ``{"refer": {metric: value}}`` on the main process and ``{}`` elsewhere.
    """

    @configurable
    def __init__(self, *, threshold=0.5, empty_iou=0.0, distributed=True, dataset_name=None):
        """
        Args:
            threshold (float): probability above which a pixel is predicted foreground.
            empty_iou (float): IoU of a sample whose prediction and GT are both empty (0.0 as
                LAVT/VPD, or 1.0).
            distributed (bool): gather results from all processes.
            dataset_name (str or None): only used in log messages.
        """
        if empty_iou not in (0.0, 1.0):
            raise ValueError(f"MODEL.REFER_HEAD.EMPTY_IOU must be 0.0 (LAVT/VPD) or 1.0, got {empty_iou}")
        self._threshold = threshold
        self._empty_iou = float(empty_iou)
        self._distributed = distributed
        self._dataset_name = dataset_name
        self._logger = logging.getLogger(__name__)
        self._stats = []

    @classmethod
    def from_config(cls, cfg, dataset_name=None, distributed=True, output_dir=None):
        """``output_dir`` is accepted for the shared evaluator signature; nothing is written."""
        return {
            "threshold": cfg.MODEL.REFER_HEAD.EVAL_THRESHOLD,
            "empty_iou": cfg.MODEL.REFER_HEAD.EMPTY_IOU,
            "distributed": distributed,
            "dataset_name": dataset_name,
        }

    def reset(self):
        self._stats = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            self._stats.append(refer_iou_stats(out["ref_mask"], inp["ref_mask"], self._threshold))

    def evaluate(self):
        gathered = gather_on_main(self._stats, distributed=self._distributed)
        if gathered is None:
            return {}
        (stats,) = gathered
        if not stats:
            self._logger.warning(f"ReferEvaluator on {self._dataset_name}: no samples processed")
            return {}
        results = refer_metrics([s[0] for s in stats], [s[1] for s in stats], self._empty_iou)
        self._logger.info(
            f"Referring segmentation on {self._dataset_name} ({len(stats)} samples): "
            + ", ".join(f"{k}={v:.2f}" for k, v in results.items())
        )
        return {"refer": results}
