# Adapted from wl-zhao/VPD@25818f5e6afdbd20e92de8e7c7b27ef09087f77a:depth/utils_depth/criterion.py
"""Scale-invariant logarithmic (SiLog) depth loss, in the form VPD and Meta-Prompts train with.

VPD's ``SiLogLoss`` (inherited from GLPDepth) computes, over the pixels with ground truth,

    d_i  = log(gt_i) - log(pred_i)
    loss = sqrt( mean_i(d_i^2) - lambda * mean_i(d_i)^2 ),   lambda = 0.5

with no x10 factor (BTS/AdaBins multiply by 10 and use lambda = 0.85; VPD does not) and with the
mean taken over *all* valid pixels of the batch pooled together, not per image. A pixel is valid
where the ground truth is > 0 (0 marks "no measurement").
"""
import torch
from torch import nn

from detectron2.config import configurable

from ...utils.precision import float32_loss

__all__ = ["silog_loss", "SiLogLoss"]

# Variance floor under the square root. The reference takes sqrt of the raw variance, whose
# gradient is infinite (→ NaN) when the prediction matches the target exactly; flooring at 1e-12
# changes the value by at most 1e-6 and makes that gradient zero instead.
_VAR_FLOOR = 1e-12


@float32_loss
def silog_loss(pred, target, valid=None, *, lambd=0.5):
    """SiLog loss averaged over the valid pixels of the whole batch.

    Args:
        pred (Tensor): predicted depth in metres, any shape (typically [B,H,W] or [B,1,H,W]);
            must be > 0 at valid pixels.
        target (Tensor): ground-truth depth, same shape as ``pred``; 0 = no measurement.
        valid (Tensor or None): bool mask of the same shape; defaults to ``target > 0``.
            Pixels where ``valid`` is true must have ``target > 0``.
        lambd (float): weight of the squared-mean term; 0 gives RMSE of log depth, 1 a fully
            scale-invariant loss. VPD uses 0.5. Must lie in [0, 1] (otherwise the quantity
            under the square root can be negative).

    Returns:
        Tensor: scalar loss.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"SiLog: prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )
    if not 0.0 <= lambd <= 1.0:
        raise ValueError(f"SiLog: lambda must be in [0, 1], got {lambd}")
    if valid is None:
        valid = target > 0
    elif valid.shape != target.shape:
        raise ValueError(
            f"SiLog: valid mask shape {tuple(valid.shape)} != target shape {tuple(target.shape)}"
        )
    valid = valid.detach().bool()
    if not bool(valid.any()):
        raise ValueError("SiLog: no valid ground-truth pixels in the batch")
    p, t = pred[valid], target[valid]
    if bool((t <= 0).any()):
        raise ValueError("SiLog: the valid mask includes pixels with ground truth <= 0")
    if bool((p <= 0).any()):
        raise ValueError("SiLog: predicted depth must be > 0 at valid pixels (log undefined)")
    d = torch.log(t) - torch.log(p)
    var = (d * d).mean() - lambd * d.mean() ** 2
    return torch.sqrt(var.clamp(min=_VAR_FLOOR))


class SiLogLoss(nn.Module):
    """Module form of :func:`silog_loss`, multiplied by a loss weight."""

    @configurable
    def __init__(self, *, lambd=0.5, loss_weight=1.0):
        """
        Args:
            lambd (float): see :func:`silog_loss`.
            loss_weight (float): multiplier applied to the loss.
        """
        super().__init__()
        self.lambd = lambd
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg):
        return {
            "lambd": cfg.MODEL.DEPTH_HEAD.SILOG_LAMBDA,
            "loss_weight": cfg.MODEL.DEPTH_HEAD.LOSS_WEIGHT,
        }

    def forward(self, pred, target, valid=None):
        """Shapes as in :func:`silog_loss`; returns a weighted scalar."""
        return self.loss_weight * silog_loss(pred, target, valid, lambd=self.lambd)

    def extra_repr(self):
        return f"lambd={self.lambd}, loss_weight={self.loss_weight}"
