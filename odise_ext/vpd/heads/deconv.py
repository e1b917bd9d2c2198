"""Stacks of stride-2 transposed convolutions shared by the depth and pose heads."""
from torch import nn

from detectron2.layers import get_norm

__all__ = ["make_deconv_layers"]

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
