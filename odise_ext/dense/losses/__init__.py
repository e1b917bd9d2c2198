"""Losses of the VPD / Meta-Prompts task heads."""
from .lovasz import lovasz_softmax
from .silog import SiLogLoss, silog_loss

__all__ = ["SiLogLoss", "silog_loss", "lovasz_softmax"]
