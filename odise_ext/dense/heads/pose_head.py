# Adapted from open-mmlab/mmpose@ca97478e659f43260fedb2e0b2d296c423178693:mmpose/models/heads/topdown_heatmap_simple_head.py
"""Top-down human-pose head (SimpleBaseline style) with heatmap decoding and flip testing.

Head: N × (deconv stride 2 → norm → ReLU) → conv to K keypoint heatmaps. Loss: the
target-weighted heatmap MSE of SimpleBaseline/HRNet, 0.5 · mean_{b,k,pixels}(w_bk·(pred − gt))².
"""
import torch
from torch import nn

from detectron2.config import configurable

from .build import HEAD_REGISTRY
from ...utils.precision import float32_loss
from .deconv import make_deconv_layers

__all__ = ["TopDownHeatmapHead", "decode_heatmaps", "flip_heatmaps", "flip_test_average"]


def decode_heatmaps(heatmaps):
    """Keypoint locations from heatmaps: arg-max plus a quarter-pixel shift towards the higher
    neighbour, per axis, where both neighbours exist (the SimpleBaseline/HRNet refinement).

    Args:
        heatmaps (Tensor): [B, K, h, w].

    Returns:
        coords (Tensor): [B, K, 2] float (x, y) in heatmap pixels (pixel centres at integers).
        scores (Tensor): [B, K] heatmap maxima. A keypoint with no positive response keeps its
            arg-max location; callers threshold on the score.
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be [B, K, h, w], got {tuple(heatmaps.shape)}")
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    scores, index = flat.max(dim=2)
    x, y = index % w, index // w

    def neighbour_diff(dx, dy, inside):
        hi = ((y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1)).unsqueeze(-1)
        lo = ((y - dy).clamp(0, h - 1) * w + (x - dx).clamp(0, w - 1)).unsqueeze(-1)
        diff = flat.gather(2, hi).squeeze(-1) - flat.gather(2, lo).squeeze(-1)
        return 0.25 * torch.sign(diff) * inside

    x_shift = neighbour_diff(1, 0, ((x > 0) & (x < w - 1)).to(heatmaps.dtype))
    y_shift = neighbour_diff(0, 1, ((y > 0) & (y < h - 1)).to(heatmaps.dtype))
    coords = torch.stack([x.to(heatmaps.dtype) + x_shift, y.to(heatmaps.dtype) + y_shift], -1)
    return coords, scores


def _check_flip_pairs(flip_pairs, num_keypoints):
    seen = set()
    for pair in flip_pairs:
        if len(pair) != 2:
            raise ValueError(f"flip pair {pair} does not have two entries")
        for i in pair:
            if not 0 <= i < num_keypoints or i in seen:
                raise ValueError(
                    f"flip pairs {flip_pairs} are invalid for {num_keypoints} keypoints "
                    "(index out of range or used twice)"
                )
            seen.add(i)


def flip_heatmaps(heatmaps, flip_pairs):
    """Mirror heatmaps horizontally and swap left/right keypoints.

    Turns the heatmaps predicted on a horizontally flipped image into heatmaps of the original
    image (and back: the operation is an involution).

    Args:
        heatmaps (Tensor): [B, K, h, w].
        flip_pairs (list[list[int]]): pairs of keypoint indices swapped by the flip.

    Returns:
        Tensor: [B, K, h, w].
    """
    num_keypoints = heatmaps.shape[1]
    _check_flip_pairs(flip_pairs, num_keypoints)
    perm = list(range(num_keypoints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return heatmaps.flip(-1)[:, perm]


def flip_test_average(heatmaps, heatmaps_flipped, flip_pairs, shift=True):
    """Average the heatmaps of an image and of its mirror image.

    Args:
        heatmaps (Tensor): [B, K, h, w] predicted on the images.
        heatmaps_flipped (Tensor): [B, K, h, w] predicted on the horizontally flipped images.
        flip_pairs (list[list[int]]): see :func:`flip_heatmaps`.
        shift (bool): move the flipped-back heatmaps one pixel right. With heatmap
            coordinates j = x / s (image x, stride s), mirroring the image maps j to
            w - 1/s - j while mirroring the heatmap maps j to w - 1 - j: the two differ by
            1 - 1/s heatmap pixels, which SimpleBaseline/HRNet round to a one-pixel shift.

    Returns:
        Tensor: [B, K, h, w].
    """
    if heatmaps.shape != heatmaps_flipped.shape:
        raise ValueError(
            f"flip test: heatmap shapes differ, {tuple(heatmaps.shape)} vs "
            f"{tuple(heatmaps_flipped.shape)}"
        )
    back = flip_heatmaps(heatmaps_flipped, flip_pairs)
    if shift:
        back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return 0.5 * (heatmaps + back)


@HEAD_REGISTRY.register()
class TopDownHeatmapHead(nn.Module):
    """Deconvolution head: one feature map [B, C, H, W] → K heatmaps [B, K, H·2^N, W·2^N]."""

    @configurable
    def __init__(
        self,
        *,
        in_feature,
        in_channels,
        num_keypoints,
        deconv_filters,
        deconv_kernels,
        final_kernel,
        norm,
        loss_weight,
        flip_pairs,
        flip_shift,
    ):
        """
        Args:
            in_feature (str): name of the input feature.
            in_channels (int): its channels.
            num_keypoints (int): K.
            deconv_filters (list[int]), deconv_kernels (list[int]): the deconv stack.
            final_kernel (int): kernel of the last conv (1 or 3).
            norm (str): detectron2 norm name after each deconv.
            loss_weight (float): multiplier of the heatmap MSE.
            flip_pairs (list[list[int]]): left/right keypoint pairs for flip testing.
            flip_shift (bool): see :func:`flip_test_average`.
        """
        super().__init__()
        if final_kernel not in (1, 3):
            raise ValueError(f"final_kernel must be 1 or 3, got {final_kernel}")
        _check_flip_pairs(flip_pairs, num_keypoints)
        self.in_feature = in_feature
        self.loss_weight = loss_weight
        self.flip_pairs = [list(p) for p in flip_pairs]
        self.flip_shift = flip_shift
        self.deconv_layers = make_deconv_layers(in_channels, deconv_filters, deconv_kernels, norm)
        self.final_layer = nn.Conv2d(
            deconv_filters[-1] if deconv_filters else in_channels,
            num_keypoints,
            kernel_size=final_kernel,
            padding=final_kernel // 2,
        )
        # SimpleBaseline initialisation: heatmaps start near zero everywhere.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, cfg, input_shape):
        p = cfg.MODEL.POSE_HEAD
        if p.IN_FEATURE not in input_shape:
            raise ValueError(f"pose feature {p.IN_FEATURE!r} not among {sorted(input_shape)}")
        return {
            "in_feature": p.IN_FEATURE,
            "in_channels": input_shape[p.IN_FEATURE].channels,
            "num_keypoints": p.NUM_KEYPOINTS,
            "deconv_filters": list(p.DECONV_FILTERS),
            "deconv_kernels": list(p.DECONV_KERNELS),
            "final_kernel": p.FINAL_KERNEL,
            "norm": p.NORM,
            "loss_weight": p.LOSS_WEIGHT,
            "flip_pairs": [list(q) for q in p.FLIP_PAIRS],
            "flip_shift": p.FLIP_SHIFT,
        }

    def forward(self, features, targets=None, target_weights=None):
        """
        Args:
            features (dict[str, Tensor]): contains ``in_feature`` [B, C, H, W].
            targets (Tensor or None): [B, K, h, w] target heatmaps.
            target_weights (Tensor or None): [B, K] per-keypoint weights (0 = unlabelled);
                all ones when omitted.

        Returns:
            heatmaps (Tensor): [B, K, h, w].
            losses (dict[str, Tensor]): {"loss_keypoint"} when ``targets`` is given, else {}.
        """
        heatmaps = self.final_layer(self.deconv_layers(features[self.in_feature]))
        losses = {}
        if targets is not None:
            losses["loss_keypoint"] = self.loss_weight * self.heatmap_loss(
                heatmaps, targets, target_weights
            )
        return heatmaps, losses

    @staticmethod
    @float32_loss
    def heatmap_loss(heatmaps, targets, target_weights=None):
        """0.5 · mean((w·(pred − gt))²) over batch, keypoints and pixels; shapes as forward."""
        if heatmaps.shape != targets.shape:
            raise ValueError(
                f"pose targets {tuple(targets.shape)} do not match heatmaps "
                f"{tuple(heatmaps.shape)}"
            )
        diff = heatmaps - targets
        if target_weights is not None:
            if target_weights.shape != heatmaps.shape[:2]:
                raise ValueError(
                    f"target weights {tuple(target_weights.shape)} must be [B, K] = "
                    f"{tuple(heatmaps.shape[:2])}"
                )
            diff = diff * target_weights[:, :, None, None].to(diff.dtype)
        return 0.5 * (diff * diff).mean()

    def flip_test(self, heatmaps, heatmaps_flipped):
        """:func:`flip_test_average` with this head's flip pairs and shift setting."""
        return flip_test_average(heatmaps, heatmaps_flipped, self.flip_pairs, self.flip_shift)
