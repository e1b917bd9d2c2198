"""Evaluators of the VPD / Meta-Prompts tasks (each module documents its metric)."""
from .depth import DepthEvaluator, depth_eval_mask, depth_metrics
from .refer import ReferEvaluator

__all__ = ["DepthEvaluator", "depth_eval_mask", "depth_metrics", "ReferEvaluator"]
