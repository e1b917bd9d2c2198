"""The diffusion mask head: the UNet's own cross-attention maps as phrase masks.

With phrases as the UNet's prompt tokens, every cross-attention layer gives each latent pixel a
distribution over the prompt tokens. Restricted to the phrase tokens and renormalised, that is
the softmax over phrases of the query-key scores. The maps of all layers are brought to the
finest latent resolution and combined with learnable, softmax-normalised layer weights, so the
result stays a per-pixel distribution over phrases; it is trained with a cross-entropy against
the ground-truth phrase masks. Gradients flow through the maps into the prompts (and so into the
EIPA adapters that produce them), never into the frozen UNet's weights.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion.cross_attention import AttentionMap

__all__ = ["DiffusionMaskHead", "phrase_distribution", "phrase_cross_entropy"]

_EPS = 1e-8


def phrase_distribution(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Attention over prompt tokens -> distribution over the valid phrases.

    Args:
        probs: [N, h, w, L] softmax over L prompt tokens; the phrases are tokens 0..P-1.
        valid: [N, P] bool, real phrases (the rest is padding).
    Returns:
        [N, P, h, w] float32, summing to 1 over the valid phrases (0 at padding).
    """
    num = valid.shape[1]
    if probs.shape[-1] < num:
        raise ValueError(f"attention over {probs.shape[-1]} tokens cannot hold {num} phrases")
    p = probs[..., :num].float() * valid[:, None, None, :]
    p = p / p.sum(-1, keepdim=True).clamp_min(_EPS)
    return p.permute(0, 3, 1, 2)


def phrase_cross_entropy(probs: torch.Tensor, gt_masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy between a distribution over phrases and the GT phrase masks.

    GT masks may overlap (e.g. "two shapes" and "a red circle") and may leave pixels uncovered;
    each pixel's target is the normalised coverage of the valid phrases at that pixel (area
    downsampling to the prediction's grid), and pixels covered by no phrase are ignored.

    Args:
        probs: [N, P, h, w] distribution over phrases (sums to 1 over valid phrases).
        gt_masks: [N, P, H, W] bool/float GT masks on the padded image canvas.
        valid: [N, P] bool.
    Returns:
        scalar: mean over covered pixels of -sum_p target_p log probs_p.
    """
    if gt_masks.shape[:2] != probs.shape[:2]:
        raise ValueError(f"GT masks {tuple(gt_masks.shape)} do not match predictions {tuple(probs.shape)}")
    target = F.interpolate(gt_masks.float(), size=probs.shape[-2:], mode="area")
    target = target * valid[:, :, None, None]
    total = target.sum(1)  # [N, h, w]
    covered = total > 0
    if not covered.any():
        return probs.sum() * 0.0  # keeps the graph connected
    target = target / total.clamp_min(_EPS)[:, None]
    ce = -(target * probs.clamp_min(_EPS).log()).sum(1)
    return ce[covered].mean()


class DiffusionMaskHead(nn.Module):
    """Combines recorded cross-attention maps into per-phrase masks."""

    def __init__(self, layer_names: Sequence[str]):
        """
        Args:
            layer_names: names of all cross-attention layers of the UNet
                (``CrossAttentionRecorder.layer_names``); one learnable weight each.
        """
        super().__init__()
        if not layer_names:
            raise ValueError("DiffusionMaskHead needs at least one cross-attention layer")
        self.layer_names = list(layer_names)
        self._index = {name: i for i, name in enumerate(self.layer_names)}
        # Zero logits: all layers start with equal weight.
        self.layer_logits = nn.Parameter(torch.zeros(len(self.layer_names)))

    def forward(self, maps: Sequence[AttentionMap], valid: torch.Tensor) -> torch.Tensor:
        """
        Args:
            maps: attention maps recorded in this forward (any subset of the layers, e.g. the ones
                that ran so far); each ``probs`` is [N, h, w, L].
            valid: [N, P] bool.
        Returns:
            [N, P, h_max, w_max] distribution over phrases at the finest recorded resolution;
            the layer weights are softmax(layer_logits) over the layers present in ``maps``.
        """
        if not maps:
            raise ValueError("no cross-attention map was recorded (does the UNet run any cross-attention?)")
        unknown = [m.name for m in maps if m.name not in self._index]
        if unknown:
            raise KeyError(f"attention maps of unknown layers {unknown}; known: {self.layer_names}")
        index = torch.tensor([self._index[m.name] for m in maps], device=self.layer_logits.device)
        weights = self.layer_logits[index].softmax(0)
        size = max((tuple(m.probs.shape[1:3]) for m in maps), key=lambda s: s[0] * s[1])
        out = 0.0
        for weight, m in zip(weights, maps):
            probs = phrase_distribution(m.probs, valid)
            if tuple(probs.shape[-2:]) != size:
                # Bilinear weights are convex, so the result is still a distribution.
                probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
            out = out + weight * probs
        return out

    @torch.no_grad()
    def foreground(
        self, maps: Sequence[AttentionMap], valid: torch.Tensor, size: Tuple[int, int]
    ) -> Optional[torch.Tensor]:
        """Each phrase's predicted foreground: the pixels where it is the most likely phrase.

        Args:
            maps: maps recorded so far (may be empty).
            valid: [N, P] bool.
            size: (h, w) of the grid to predict on.
        Returns:
            [N, P, h * w] bool, or None when no map has been recorded yet. No gradient.
        """
        if not maps:
            return None
        probs = F.interpolate(self(maps, valid), size=size, mode="bilinear", align_corners=False)
        probs = probs.masked_fill(~valid[:, :, None, None], -1.0)
        winner = probs.argmax(1)  # [N, h, w]
        phrase_ids = torch.arange(valid.shape[1], device=winner.device)
        return (winner[:, None] == phrase_ids[None, :, None, None]).flatten(2)
