# Adapted from fudan-zvg/meta-prompts@a3e8583098c64c8854a85b260d80cb8335402469:depth/models_depth/model.py
"""Meta-Prompts' depth head: feature re-arrangement with the meta prompts + depth decoder.

Computation (Meta-Prompts' NYUv2 sizes in brackets; C_s = channels at stride s):
  stride-8 map  → conv3x3 → GN → ReLU                                   (C8 [320])
  stride-16/32/64 map → 1/2/3 × (deconv k4 s2 p1 → BN → ReLU, NECK_FILTERS [32])
                      → conv3x3 → BN → ReLU, back to C_s               (all at stride 8)
  concat → conv3x3 → GN → ReLU to the prompt width D                    ([768])
  einsum('bchw,bnc->bnhw') with the last step's N prompts               ([50] channels)
  crop to the image's part of the canvas, bilinear resize to image / 8  (60 x 60 for 480)
  3 × (deconv k2 s2 → BN → ReLU, DECONV_FILTERS [32]) → conv3x3 → BN → ReLU (HIDDEN_DIM [192])
  conv3x3 → ReLU → conv3x3 → 1 channel; depth = sigmoid(·) × MAX_DEPTH
There is no final upsampling: three ×2 deconvolutions of the image / 8 map give the image size.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import get_norm

from ..dense.heads.build import HEAD_REGISTRY
from ..dense.heads.deconv import make_deconv_layers, make_depth_decoder
from ..dense.losses.silog import SiLogLoss

__all__ = ["MetaPromptsDepthHead"]

# Meta-Prompts' neck upsamples each coarser map with 4 x 4 deconvolutions of 32 filters.
_NECK_KERNEL = 4


def _upsampler(channels, times, filters, norm):
    """``times`` x2 deconvolutions then conv3x3 → norm → ReLU back to ``channels``."""
    block = nn.Module()
    block.deconv_layers = make_deconv_layers(channels, [filters] * times, [_NECK_KERNEL] * times, norm)
    block.conv_layers = nn.Sequential(
        nn.Conv2d(filters, channels, 3, padding=1), get_norm(norm, channels), nn.ReLU(inplace=True)
    )
    return block


@HEAD_REGISTRY.register()
class MetaPromptsDepthHead(nn.Module):
    """Meta-Prompts depth head: four feature maps + prompts → metric depth in (0, max_depth)."""

    @configurable
    def __init__(
        self,
        *,
        in_features,
        in_channels,
        in_strides,
        num_prompts,
        prompt_dim,
        gn_groups,
        neck_filters,
        deconv_filters,
        deconv_kernels,
        hidden_dim,
        norm,
        max_depth,
        loss,
    ):
        """
        Args:
            in_features (list[str]): names of the stride-8, -16, -32 and -64 features.
            in_channels (list[int]), in_strides (list[int]): their channels and strides.
            num_prompts (int): N, the channels of the re-arranged map.
            prompt_dim (int): D, the prompts' width.
            gn_groups (int): GroupNorm groups of the stride-8 conv and the fusion conv.
            neck_filters (int): filters of the neck's upsampling deconvolutions.
            deconv_filters, deconv_kernels (list[int]): the decoder's deconv stack.
            hidden_dim (int): channels of the decoder's convs.
            norm (str): detectron2 norm after the deconvs and the decoder conv.
            max_depth (float): depth at sigmoid output 1, in metres.
            loss (nn.Module): ``loss(pred [B,H,W], target [B,H,W])``.
        """
        super().__init__()
        if len(in_features) != 4:
            raise ValueError(f"MetaPromptsDepthHead needs four features, got {list(in_features)}")
        ups = [int(round(math.log2(s / in_strides[0]))) for s in in_strides]
        if ups != [0, 1, 2, 3]:
            raise ValueError(f"features {list(in_features)} have strides {list(in_strides)}; expected 1:2:4:8")
        self.in_features = list(in_features)
        self.stride = int(in_strides[0])
        self.max_depth = float(max_depth)
        self.loss = loss
        c8 = in_channels[0]
        self.layer1 = nn.Sequential(nn.Conv2d(c8, c8, 3, padding=1), nn.GroupNorm(math.gcd(gn_groups, c8), c8), nn.ReLU())
        self.layer2 = _upsampler(in_channels[1], 1, neck_filters, norm)
        self.layer3 = _upsampler(in_channels[2], 2, neck_filters, norm)
        self.layer4 = _upsampler(in_channels[3], 3, neck_filters, norm)
        self.out_layer = nn.Sequential(
            nn.Conv2d(sum(in_channels), prompt_dim, 3, padding=1), nn.GroupNorm(gn_groups, prompt_dim), nn.ReLU()
        )
        self.deconv_layers, self.conv_layers, self.last_layer_depth = make_depth_decoder(
            num_prompts, deconv_filters, deconv_kernels, hidden_dim, norm
        )
        if 2 ** len(deconv_filters) != self.stride:
            raise ValueError(f"{len(deconv_filters)} x2 deconvolutions do not undo the stride {self.stride}")

    @classmethod
    def from_config(cls, cfg, input_shape, prompt=None):
        """``prompt``: the built backbone's prompt module (its ``num_tokens`` N and ``token_dim`` D)."""
        if prompt is None or prompt.num_tokens is None or prompt.token_dim is None:
            raise ValueError(
                "MetaPromptsDepthHead needs the backbone's prompt module with a fixed context shape "
                "(MODEL.DIFFUSION.PROMPT.NAME 'MetaPrompts'); build it through DenseDepthEstimator"
            )
        d = cfg.MODEL.DEPTH_HEAD
        missing = [f for f in d.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(f"depth head features {missing} not among {sorted(input_shape)}")
        return {
            "in_features": list(d.IN_FEATURES),
            "in_channels": [input_shape[f].channels for f in d.IN_FEATURES],
            "in_strides": [input_shape[f].stride for f in d.IN_FEATURES],
            "num_prompts": prompt.num_tokens,
            "prompt_dim": prompt.token_dim,
            "gn_groups": d.GN_GROUPS,
            "neck_filters": d.NECK_FILTERS,
            "deconv_filters": list(d.DECONV_FILTERS),
            "deconv_kernels": list(d.DECONV_KERNELS),
            "hidden_dim": d.HIDDEN_DIM,
            "norm": d.NORM,
            "max_depth": d.MAX_DEPTH,
            "loss": SiLogLoss(cfg),
        }

    def rearranged(self, features, prompts, image_size, canvas_size):
        """Features + prompts [B, N, D] -> [B, N, h / s, w / s] (s: the stride-8 feature's stride).

        ``canvas_size``: the size the backbone saw, of which the image covers the top-left
        ``image_size`` (padding) or all (a resized image: pass ``canvas_size = image_size``).
        """
        s8, s16, s32, s64 = (features[f] for f in self.in_features)
        up = lambda block, x: block.conv_layers(block.deconv_layers(x))  # noqa: E731
        x = torch.cat([self.layer1(s8), up(self.layer2, s16), up(self.layer3, s32), up(self.layer4, s64)], dim=1)
        x = self.out_layer(x)
        x = torch.einsum("bchw,bnc->bnhw", x, prompts.to(x.dtype))
        h, w = int(image_size[0]), int(image_size[1])
        x = x[..., : -(-x.shape[-2] * h // int(canvas_size[0])), : -(-x.shape[-1] * w // int(canvas_size[1]))]
        return F.interpolate(x, size=(h // self.stride, w // self.stride), mode="bilinear", align_corners=False)

    def forward(self, features, prompts=None, image_size=None, canvas_size=None, targets=None):
        """The depth heads' call.

        Args:
            features (dict[str, Tensor]): [B, C_i, H_i, W_i] maps named by ``in_features``.
            prompts (Tensor): [B, N, D] the last refinement step's prompts (the backbone
                output's ``prompt.context``).
            image_size (tuple): (h, w) of the images (default: the targets'); canvas_size: see
                :meth:`rearranged` (default: the image size).
            targets (Tensor or None): [B, h, w] ground-truth depth in metres, 0 = invalid.
        Returns:
            depth [B, h, w] in (0, max_depth); losses {"loss_depth"} when ``targets`` is given.
        """
        if image_size is None and targets is not None:
            image_size = tuple(targets.shape[-2:])
        if prompts is None or image_size is None:
            raise ValueError("MetaPromptsDepthHead needs the prompts and the image size (or targets)")
        x = self.rearranged(features, prompts, image_size, canvas_size or image_size)
        x = self.conv_layers(self.deconv_layers(x))
        depth = (torch.sigmoid(self.last_layer_depth(x)) * self.max_depth)[:, 0]
        if tuple(depth.shape[-2:]) != tuple(image_size):  # image sides not multiples of the stride
            depth = F.interpolate(depth[:, None], size=tuple(image_size), mode="bilinear", align_corners=False)[:, 0]
        losses = {}
        if targets is not None:
            losses["loss_depth"] = self.loss(depth, targets)
        return depth, losses
