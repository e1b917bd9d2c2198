"""Stacks of stride-2 transposed convolutions shared by the depth and pose heads, and the depth
decoder of the VPD and Meta-Prompts depth heads."""
from torch import nn
from torch.nn import functional as F

from detectron2.layers import Conv2d, get_norm

__all__ = ["make_deconv_layers", "make_depth_decoder"]

# kernel -> (padding, output_padding) such that a stride-2 deconvolution exactly doubles H and W.
_DECONV_PADDING = {2: (0, 0), 3: (1, 1), 4: (1, 0)}


def make_deconv_layers(in_channels, filters, kernels, norm):
    """``len(filters)`` blocks of ConvTranspose2d(stride 2, no bias) → norm → ReLU.

    Each block maps [B, C_in, H, W] → [B, filters[i], 2H, 2W].

    Args:
        in_channels (int): channels of the input.
        filters (list[int]): output channels of each block.
        kernels (list[int]): kernel size of each block, each one of 2, 3, 4.
        norm (str): detectron2 norm name ("BN", "SyncBN", "GN", ...) or "" for none.

    Returns:
        nn.Sequential
    """
    if len(filters) != len(kernels):
        raise ValueError(
            f"deconv filters {list(filters)} and kernels {list(kernels)} differ in length"
        )
    layers = []
    for out_channels, kernel in zip(filters, kernels):
        if kernel not in _DECONV_PADDING:
            raise ValueError(
                f"deconv kernel must be one of {sorted(_DECONV_PADDING)}, got {kernel}"
            )
        padding, output_padding = _DECONV_PADDING[kernel]
        # A bias is redundant in front of a normalisation layer; keep one when there is none.
        layers.append(
            nn.ConvTranspose2d(
                in_channels,
                out_channels,
                kernel_size=kernel,
                stride=2,
                padding=padding,
                output_padding=output_padding,
                bias=not norm,
            )
        )
        norm_layer = get_norm(norm, out_channels)
        if norm_layer is not None:
            layers.append(norm_layer)
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


def make_depth_decoder(in_channels, filters, kernels, hidden_dim, norm):
    """The depth decoder of VPD and Meta-Prompts (GLPDepth's): ``(deconv_layers, conv_layers,
    last_layer_depth)``, the names the released checkpoints use.

    deconv_layers: :func:`make_deconv_layers` ``in_channels`` -> ``filters[-1]`` (x 2^len);
    conv_layers: 3x3 conv -> norm -> ReLU to ``hidden_dim``; last_layer_depth: 3x3 conv, ReLU,
    3x3 conv to 1 channel (the heads apply sigmoid x max depth).
    """
    deconv_layers = make_deconv_layers(in_channels, filters, kernels, norm)
    conv_layers = Conv2d(
        filters[-1] if filters else in_channels,
        hidden_dim,
        kernel_size=3,
        padding=1,
        norm=get_norm(norm, hidden_dim),
        activation=F.relu,
    )
    last_layer_depth = nn.Sequential(
        nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden_dim, 1, 3, padding=1)
    )
    return deconv_layers, conv_layers, last_layer_depth
