# Adapted from wl-zhao/VPD@25818f5e6afdbd20e92de8e7c7b27ef09087f77a:depth/models_depth/model.py
"""Monocular depth decoder of VPD (also used by Meta-Prompts).

Computation (channel sizes are config values; VPD's in brackets):
  stride-8 map  → conv3x3/2 → GN → ReLU → conv3x3/2        (→ stride 32, C8 channels)
  stride-16 map → conv3x3/2                                 (→ stride 32, C16 channels)
  stride-64 map → nearest ×2                                (→ stride 32, C64 channels)
  concat [s8, s16, s32, s64] → conv1x1 → GN → ReLU          (FUSE_DIM [1536])
  crop to ceil(image / 32)                                  (VPD: 16 → 15 for a 480 window padded to 512)
  N × (deconv k, stride 2 → norm → ReLU)                    (DECONV_FILTERS [32, 32, 32])
  conv3x3 → norm → ReLU                                     (HIDDEN_DIM [192])
  bilinear ×2, bilinear ×2
  conv3x3 → ReLU → conv3x3 → 1 channel
  depth = sigmoid(·) × MAX_DEPTH
With strides 8/16/32/64 and three deconvs the output is at full image resolution.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable

from ..losses.silog import SiLogLoss
from .build import HEAD_REGISTRY
from .deconv import make_depth_decoder

__all__ = ["VPDDepthHead"]

# The four inputs must sit at strides proportional to 1:2:4:8 (s8, s16, s32, s64 in VPD).
_STRIDE_RATIOS = (1, 2, 4, 8)


def crop_to_size(x, size):
    """Crop [..., H', W'] to the top-left ``size`` = (H, W).

    Backbone inputs are zero-padded at the bottom/right to a multiple of the largest stride, so
    the image occupies the top-left corner of a prediction made on the padded canvas.
    """
    h, w = int(size[0]), int(size[1])
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(
            f"prediction of size {tuple(x.shape[-2:])} is smaller than the requested "
            f"{(h, w)}: the features do not cover the image (expected features of an image "
            f"padded up to a multiple of the largest stride)"
        )
    return x[..., :h, :w]


@HEAD_REGISTRY.register()
class VPDDepthHead(nn.Module):
    """VPD depth decoder: four feature maps → metric depth in (0, max_depth)."""

    @configurable
    def __init__(
        self,
        *,
        in_features,
        in_channels,
        fuse_dim,
        gn_groups,
        deconv_filters,
        deconv_kernels,
        hidden_dim,
        norm,
        max_depth,
        loss,
        fused_stride=32,
    ):
        """
        Args:
            in_features (list[str]): names of the stride-8, -16, -32 and -64 features.
            in_channels (list[int]): their channel counts, same order.
            fuse_dim (int): output channels of the 1x1 fusion conv at stride 32.
            gn_groups (int): GroupNorm groups after the fusion conv (must divide ``fuse_dim``);
                the stride-8 branch uses gcd(gn_groups, C8) groups, so that any C8 works
                (VPD: C8 = 320 -> 16 groups; Meta-Prompts: C8 = 50 prompts -> 2 groups).
            deconv_filters (list[int]), deconv_kernels (list[int]): the deconv stack.
            hidden_dim (int): channels of the conv after the deconvs and of the last block.
            norm (str): detectron2 norm name used after the deconvs and the hidden conv.
            max_depth (float): depth at sigmoid output 1, in metres.
            loss (nn.Module): called as ``loss(pred [B,H,W], target [B,H,W])``.
            fused_stride (int): image stride of the fused map (that of the third input); the
                fused map is cropped to ceil(image_size / fused_stride) before decoding, so the
                decoder never sees cells of pure padding (as VPD does).
        """
        super().__init__()
        if len(in_features) != 4 or len(in_channels) != 4:
            raise ValueError(
                f"VPDDepthHead needs four features (strides 8/16/32/64), got {list(in_features)}"
            )
        if max_depth <= 0:
            raise ValueError(f"max_depth must be > 0, got {max_depth}")
        self.in_features = list(in_features)
        self.max_depth = float(max_depth)
        self.loss = loss
        self.fused_stride = int(fused_stride)
        c8, c16, c32, c64 = in_channels
        if gn_groups <= 0 or fuse_dim % gn_groups:
            raise ValueError(f"MODEL.DEPTH_HEAD.GN_GROUPS={gn_groups} must divide FUSE_DIM={fuse_dim}")

        self.layer1 = nn.Sequential(
            nn.Conv2d(c8, c8, 3, stride=2, padding=1),
            nn.GroupNorm(math.gcd(gn_groups, c8), c8),
            nn.ReLU(),
            nn.Conv2d(c8, c8, 3, stride=2, padding=1),
        )
        self.layer2 = nn.Conv2d(c16, c16, 3, stride=2, padding=1)
        self.out_layer = nn.Sequential(
            nn.Conv2d(c8 + c16 + c32 + c64, fuse_dim, 1),
            nn.GroupNorm(gn_groups, fuse_dim),
            nn.ReLU(),
        )
        self.deconv_layers, self.conv_layers, self.last_layer_depth = make_depth_decoder(
            fuse_dim, deconv_filters, deconv_kernels, hidden_dim, norm
        )
        self._init_weights()

    @classmethod
    def from_config(cls, cfg, input_shape, prompt=None):
        """``prompt``: the backbone's prompt module (not read: VPD's decoder uses no prompts)."""
        d = cfg.MODEL.DEPTH_HEAD
        missing = [f for f in d.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(f"depth head features {missing} not among {sorted(input_shape)}")
        strides = [input_shape[f].stride for f in d.IN_FEATURES]
        if None not in strides and [s // strides[0] for s in strides] != list(_STRIDE_RATIOS):
            raise ValueError(
                f"depth head features {list(d.IN_FEATURES)} have strides {strides}; "
                "expected ratios 1:2:4:8 (e.g. 8/16/32/64)"
            )
        return {
            "in_features": list(d.IN_FEATURES),
            "in_channels": [input_shape[f].channels for f in d.IN_FEATURES],
            "fuse_dim": d.FUSE_DIM,
            "gn_groups": d.GN_GROUPS,
            "deconv_filters": list(d.DECONV_FILTERS),
            "deconv_kernels": list(d.DECONV_KERNELS),
            "hidden_dim": d.HIDDEN_DIM,
            "norm": d.NORM,
            "max_depth": d.MAX_DEPTH,
            "loss": SiLogLoss(cfg),
            "fused_stride": strides[2] if strides[2] is not None else 32,
        }

    def _init_weights(self):
        # VPD's initialisation: small truncated-normal weights in the fusion convs and
        # near-zero (std 1e-3) decoder weights, so training starts from depth ≈ max_depth / 2
        # everywhere instead of from a random depth map.
        for module in (self.layer1, self.layer2, self.out_layer):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
        for module in (self.deconv_layers, self.conv_layers, self.last_layer_depth):
            for m in module.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, std=0.001)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def fuse(self, features):
        """Features dict → fused stride-32 map [B, FUSE_DIM, H/32, W/32]."""
        s8, s16, s32, s64 = (features[f] for f in self.in_features)
        x8 = self.layer1(s8)
        x16 = self.layer2(s16)
        # Nearest resize to the stride-32 grid; equal to VPD's ×2 upsampling whenever the
        # stride-64 map is exactly half the stride-32 one, and still aligned when it is not.
        x64 = F.interpolate(s64, size=s32.shape[-2:], mode="nearest")
        size = tuple(s32.shape[-2:])
        for name, x in (("stride-8", x8), ("stride-16", x16)):
            if tuple(x.shape[-2:]) != size:
                raise ValueError(
                    f"depth head: downsampled {name} map has size {tuple(x.shape[-2:])}, "
                    f"stride-32 map {size}; feature sizes must be ceil(image / stride)"
                )
        return self.out_layer(torch.cat([x8, x16, s32, x64], dim=1))

    def decode(self, x):
        """Fused map [B, FUSE_DIM, h, w] → depth [B, H, W] in (0, max_depth), uncropped
        (H, W = h, w × 2^len(DECONV_FILTERS) × 4)."""
        x = self.deconv_layers(x)
        x = self.conv_layers(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return (torch.sigmoid(self.last_layer_depth(x)) * self.max_depth)[:, 0]

    def forward(self, features, prompts=None, image_size=None, canvas_size=None, targets=None):
        """The depth heads' call (see ``MetaPromptsDepthHead.forward``); VPD's decoder reads no
        prompts and no canvas size.

        Args:
            features (dict[str, Tensor]): [B, C_i, H_i, W_i] maps named by ``in_features``.
            prompts, canvas_size: ignored.
            image_size (tuple or None): (H, W) of the image on the padded canvas; the fused map
                and the prediction are cropped to it. Defaults to the size of ``targets``; one
                of the two is needed.
            targets (Tensor or None): [B, H, W] ground-truth depth in metres, 0 = invalid.

        Returns:
            depth (Tensor): [B, H, W] depth in metres, in (0, max_depth).
            losses (dict[str, Tensor]): {"loss_depth"} when ``targets`` is given, else {}.
        """
        if image_size is None and targets is not None:
            image_size = targets.shape[-2:]
        if image_size is None:
            raise ValueError("VPDDepthHead needs image_size (or targets) to crop the fused map to the image")
        x = self.fuse(features)
        x = crop_to_size(x, [-(-int(s) // self.fused_stride) for s in image_size])
        depth = crop_to_size(self.decode(x), image_size)
        losses = {}
        if targets is not None:
            losses["loss_depth"] = self.loss(depth, targets)
        return depth, losses
