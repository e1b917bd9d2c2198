"""Monocular depth evaluation (NYUv2 / KITTI) following the VPD / Meta-Prompts (GLPDepth) protocol.

Per image: predicted inf becomes max_depth and NaN becomes min_depth (logged), and nothing else
is done to the prediction -- VPD's and Meta-Prompts' ``cropping_img``; ``clamp_pred``
(``MODEL.DEPTH_HEAD.EVAL_CLAMP_PRED``) additionally clamps it to [min_depth, max_depth], as BTS's
evaluation does. Pixels are evaluated where min_depth < gt < max_depth and inside the optional
crop ("nyu": rows 45:471, cols 41:601 of the 480x640 map, which VPD applies to every NYUv2 image;
"garg" / "eigen": the KITTI crops as fractions of the ground-truth size); the metrics of
:func:`depth_metrics` are computed over those pixels; the dataset score of every metric is the
**mean over images** of the per-image values (VPD/GLPDepth/BTS average per image, not over the
pooled pixels of the dataset).

With an ``output_dir`` and ``num_visualizations`` > 0 (``MODEL.DEPTH_HEAD.EVAL_VIS_COUNT``), the
first images each process sees are also written as colour-mapped PNGs
``<output_dir>/depth_vis/<rank>_<index>_<image>.png``: prediction | ground truth side by side,
both coloured on the same [0, max valid ground truth] range (pixels without ground truth black).
"""
import logging
import os
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from detectron2.config import configurable
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ...utils.atomic_io import atomic_save_image
from ...utils.gather import gather_on_main

__all__ = ["depth_metrics", "depth_eval_mask", "DepthEvaluator", "DEPTH_METRIC_NAMES"]

DEPTH_METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")


def _nyu_crop(h, w):
    # Eigen et al.'s NYUv2 evaluation crop, defined in pixels of the 480x640 ground truth.
    if (h, w) != (480, 640):
        raise ValueError(f"the NYU eval crop is defined for 480x640 depth maps, got {h}x{w}")
    return slice(45, 471), slice(41, 601)


def _garg_crop(h, w):
    # Garg et al.'s KITTI crop, as fractions of the full ground-truth size.
    return (
        slice(int(0.40810811 * h), int(0.99189189 * h)),
        slice(int(0.03594771 * w), int(0.96405229 * w)),
    )


def _eigen_crop(h, w):
    # Eigen et al.'s KITTI crop, as fractions of the full ground-truth size.
    return (
        slice(int(0.3324324 * h), int(0.91351351 * h)),
        slice(int(0.0359477 * w), int(0.96405229 * w)),
    )


_CROPS = {"nyu": _nyu_crop, "garg": _garg_crop, "eigen": _eigen_crop}


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def depth_eval_mask(gt, *, min_depth, max_depth, crop=""):
    """Pixels that count in evaluation.

    Args:
        gt (ndarray or Tensor): [H, W] ground-truth depth (0 = no measurement).
        min_depth, max_depth (float): open interval of ground-truth depths kept.
        crop (str): "" (none), "nyu", "garg" or "eigen".

    Returns:
        ndarray: [H, W] bool.
    """
    gt = _to_numpy(gt)
    if gt.ndim != 2:
        raise ValueError(f"ground-truth depth must be [H, W], got shape {gt.shape}")
    valid = (gt > min_depth) & (gt < max_depth)
    if crop:
        if crop not in _CROPS:
            raise ValueError(f"unknown depth eval crop {crop!r}; choose from {sorted(_CROPS)}")
        rows, cols = _CROPS[crop](*gt.shape)
        inside = np.zeros_like(valid)
        inside[rows, cols] = True
        valid &= inside
    return valid


def depth_metrics(pred, gt, valid):
    """Depth metrics of one image over the pixels where ``valid`` is true.

    With p = prediction, g = ground truth (metres), means over the valid pixels:
        abs_rel  = mean(|p - g| / g)
        sq_rel   = mean((p - g)^2 / g)
        rmse     = sqrt(mean((p - g)^2))
        rmse_log = sqrt(mean((ln p - ln g)^2))
        log10    = mean(|log10 p - log10 g|)
        silog    = sqrt(mean(d^2) - 0.5 * mean(d)^2), d = ln p - ln g   (as VPD reports it:
                   lambda 0.5, no x100 factor)
        dk       = fraction of pixels with max(p / g, g / p) < 1.25^k, k = 1, 2, 3

    Args:
        pred, gt (ndarray or Tensor): [H, W] depths; > 0 wherever ``valid``.
        valid (ndarray or Tensor): [H, W] bool.

    Returns:
        dict[str, float]: keys ``DEPTH_METRIC_NAMES``.
    """
    pred, gt = _to_numpy(pred), _to_numpy(gt)
    valid = np.asarray(valid.cpu() if isinstance(valid, torch.Tensor) else valid, dtype=bool)
    if not pred.shape == gt.shape == valid.shape:
        raise ValueError(
            f"depth maps of different shapes: prediction {pred.shape}, ground truth {gt.shape}, "
            f"valid mask {valid.shape}"
        )
    if not valid.any():
        raise ValueError("no valid pixels to evaluate depth on")
    p, g = pred[valid], gt[valid]
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("depth values at valid pixels must be finite")
    if (p <= 0).any() or (g <= 0).any():
        raise ValueError("depth values at valid pixels must be > 0 (logarithms are taken)")
    diff = p - g
    d = np.log(p) - np.log(g)
    ratio = np.maximum(p / g, g / p)
    return {
        "d1": float(np.mean(ratio < 1.25)),
        "d2": float(np.mean(ratio < 1.25**2)),
        "d3": float(np.mean(ratio < 1.25**3)),
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(d**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "silog": float(np.sqrt(max(np.mean(d**2) - 0.5 * np.mean(d) ** 2, 0.0))),
    }


class DepthEvaluator(DatasetEvaluator):
    """Per-image depth metrics averaged over the dataset (see the module docstring).

    ``process`` takes inputs carrying ``"depth"`` ([H, W] metres, 0 = invalid) and outputs
    carrying ``"depth"`` ([H, W] metres, same size). ``evaluate`` returns
    ``{"depth": {metric: value}}`` on the main process and ``{}`` elsewhere.
    """

    @configurable
    def __init__(
        self,
        *,
        min_depth=1e-3,
        max_depth=10.0,
        crop="",
        clamp_pred=False,
        distributed=True,
        dataset_name=None,
        output_dir=None,
        num_visualizations=0,
    ):
        """
        Args:
            min_depth, max_depth (float): evaluation range (ground truth kept strictly inside;
                predicted NaN / inf replaced by min / max; predictions clamped into it when
                ``clamp_pred``).
            crop (str): "" (none), "nyu", "garg" or "eigen".
            clamp_pred (bool): clamp predictions to [min_depth, max_depth] (BTS); False = VPD /
                Meta-Prompts.
            distributed (bool): gather results from all processes.
            dataset_name (str or None): only used in log messages.
            output_dir (str or None): where ``depth_vis/`` is written (None = no visualisations).
            num_visualizations (int): images per process written there (0 = none).
        """
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        if crop and crop not in _CROPS:
            raise ValueError(f"unknown depth eval crop {crop!r}; choose from {sorted(_CROPS)}")
        self._min_depth = float(min_depth)
        self._max_depth = float(max_depth)
        self._crop = crop
        self._clamp_pred = clamp_pred
        self._distributed = distributed
        self._dataset_name = dataset_name
        self._vis_dir = os.path.join(output_dir, "depth_vis") if output_dir and num_visualizations > 0 else None
        self._num_vis = int(num_visualizations)
        self._logger = logging.getLogger(__name__)
        self._per_image = []

    @classmethod
    def from_config(cls, cfg, dataset_name=None, distributed=True, output_dir=None):
        d = cfg.MODEL.DEPTH_HEAD
        return {
            "min_depth": d.EVAL_MIN_DEPTH,
            "max_depth": d.EVAL_MAX_DEPTH,
            "crop": d.EVAL_CROP,
            "clamp_pred": d.EVAL_CLAMP_PRED,
            "distributed": distributed,
            "dataset_name": dataset_name,
            "output_dir": output_dir,
            "num_visualizations": d.EVAL_VIS_COUNT,
        }

    def reset(self):
        self._per_image = []

    def _visualize(self, name, pred, gt, valid):
        """Write prediction | ground truth, coloured on one range, under ``depth_vis/``."""
        from ..depth_vis import depth_comparison

        os.makedirs(self._vis_dir, exist_ok=True)
        # File names repeat across KITTI drives: prefix process rank and running index.
        stem = os.path.splitext(os.path.basename(str(name)))[0] or "image"
        stem = f"{comm.get_rank()}_{len(self._per_image) - 1:04d}_{stem}"
        image = Image.fromarray(depth_comparison(pred, gt, valid))
        atomic_save_image(image, os.path.join(self._vis_dir, f"{stem}.png"))

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            name = inp.get("file_name", inp.get("image_id", len(self._per_image)))
            pred, gt = _to_numpy(out["depth"]), _to_numpy(inp["depth"])
            if pred.shape != gt.shape or pred.ndim != 2:
                raise ValueError(
                    f"{name}: predicted depth {pred.shape} and ground truth {gt.shape} must be "
                    "[H, W] maps of the same size"
                )
            num_inf, num_nan = int(np.isinf(pred).sum()), int(np.isnan(pred).sum())
            if num_inf or num_nan:
                # VPD's cropping_img: inf -> max depth, NaN -> min depth (scored, not dropped).
                self._logger.warning(
                    f"{name}: {num_inf} inf / {num_nan} NaN predicted depths set to "
                    f"{self._max_depth} / {self._min_depth} m"
                )
                pred = np.where(np.isinf(pred), self._max_depth, pred)
                pred = np.where(np.isnan(pred), self._min_depth, pred)
            if self._clamp_pred:
                pred = np.clip(pred, self._min_depth, self._max_depth)
            valid = depth_eval_mask(
                gt, min_depth=self._min_depth, max_depth=self._max_depth, crop=self._crop
            )
            if not valid.any():
                raise ValueError(f"{name}: no ground-truth pixels inside the evaluation range/crop")
            self._per_image.append(depth_metrics(pred, gt, valid))
            if self._vis_dir is not None and len(self._per_image) <= self._num_vis:
                self._visualize(name, pred, gt, valid)

    def evaluate(self):
        gathered = gather_on_main(self._per_image, distributed=self._distributed)
        if gathered is None:
            return {}
        (per_image,) = gathered
        if not per_image:
            self._logger.warning(f"DepthEvaluator on {self._dataset_name}: no images processed")
            return {}
        results = OrderedDict(
            (k, float(np.mean([m[k] for m in per_image]))) for k in DEPTH_METRIC_NAMES
        )
        self._logger.info(
            f"Depth on {self._dataset_name} ({len(per_image)} images): "
            + ", ".join(f"{k}={v:.4f}" for k, v in results.items())
        )
        return {"depth": results}
