"""Evaluators of odise-ext (each module documents its metric)."""
from .depth_evaluation import DepthEvaluator, depth_eval_mask, depth_metrics
from .png_evaluation import PNGEvaluator, average_recall, mask_iou, png_metrics
from .refer_evaluation import ReferEvaluator

__all__ = ["DepthEvaluator", "depth_eval_mask", "depth_metrics", "PNGEvaluator", "average_recall", "mask_iou",
           "png_metrics", "ReferEvaluator"]
