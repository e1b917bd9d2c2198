# Adapted from facebookresearch/Mask2Former@161be514814ea63440fae520d2ec72707b62ba54:mask2former/modeling/pixel_decoder/ops/modules/ms_deform_attn.py
# Adapted from facebookresearch/Mask2Former@5c33919116070a6baca5e112617e56b302d0ab4b:mask2former/modeling/pixel_decoder/ops/functions/ms_deform_attn_func.py
"""Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021).

Each query attends, per head, to ``n_points`` bilinearly sampled locations on each of
``n_levels`` feature maps around its reference point; the samples are combined by attention
weights softmaxed over all levels and points of the head.

Two kernels compute the same op:

* ``"pytorch"``: ``F.grid_sample`` per level; runs anywhere and is the reference.
* ``"cuda"``: the compiled ``MultiScaleDeformableAttention`` extension of Deformable DETR /
  Mask2Former, used only when it is installed and the tensors are on a CUDA device. It is never
  required; ``"auto"`` falls back to the PyTorch kernel.
"""

import functools
import math
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ms_deform_attn", "ms_deform_attn_core_pytorch", "cuda_kernel_available", "MSDeformAttn"]

SpatialShapes = Union[torch.Tensor, Sequence[Tuple[int, int]]]


def _shape_list(spatial_shapes: SpatialShapes) -> List[Tuple[int, int]]:
    if isinstance(spatial_shapes, torch.Tensor):
        spatial_shapes = spatial_shapes.tolist()
    return [(int(h), int(w)) for h, w in spatial_shapes]


def ms_deform_attn_core_pytorch(
    value: torch.Tensor,
    value_spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Pure-PyTorch multi-scale deformable attention.

    Args:
        value: [B, S, M, D], the levels flattened row-major and concatenated, S = sum(H_l * W_l).
        value_spatial_shapes: L pairs (H_l, W_l), as a [L, 2] tensor or a sequence.
        sampling_locations: [B, Lq, M, L, P, 2], (x, y) in [0, 1] over each level; samples
            outside the map read zeros.
        attention_weights: [B, Lq, M, L, P].
    Returns:
        [B, Lq, M * D].
    """
    shapes = _shape_list(value_spatial_shapes)
    bs, _, n_heads, head_dim = value.shape
    _, n_queries, _, n_levels, n_points, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample works on [N, C, H, W] with grid in [-1, 1]; fold heads into the batch.
    sampling_grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes):
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(bs * n_heads, head_dim, h, w)
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [B*M, Lq, P, 2]
        sampled.append(
            F.grid_sample(
                value_l, grid_l.to(value_l.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )  # [B*M, D, Lq, P]
    weights = attention_weights.transpose(1, 2).reshape(bs * n_heads, 1, n_queries, n_levels * n_points)
    output = (torch.stack(sampled, dim=-2).flatten(-2) * weights.to(value.dtype)).sum(-1)
    return output.view(bs, n_heads * head_dim, n_queries).transpose(1, 2).contiguous()


@functools.lru_cache(maxsize=None)
def _cuda_extension():
    """The compiled Deformable-DETR op, or None when it is not installed."""
    try:
        import MultiScaleDeformableAttention as ext  # noqa: N813
    except ImportError:
        return None
    return ext


def cuda_kernel_available() -> bool:
    """Whether the optional compiled CUDA kernel can be used on this machine."""
    return torch.cuda.is_available() and _cuda_extension() is not None


class _MSDeformAttnCUDAFunction(torch.autograd.Function):
    # The compiled kernel only supports float32; autocast inputs are cast up.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(
        ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step
    ):
        ctx.im2col_step = im2col_step
        output = _cuda_extension().ms_deform_attn_forward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step
        )
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        return output

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_output):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        grad_value, grad_loc, grad_attn = _cuda_extension().ms_deform_attn_backward(
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            grad_output.contiguous(),
            ctx.im2col_step,
        )
        return grad_value, None, None, grad_loc, grad_attn, None


def _level_start_index(shapes: List[Tuple[int, int]], device) -> torch.Tensor:
    sizes = torch.tensor([h * w for h, w in shapes], dtype=torch.long, device=device)
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


def _ms_deform_attn_cuda(value, spatial_shapes, sampling_locations, attention_weights):
    shapes = _shape_list(spatial_shapes)
    shapes_t = torch.as_tensor(shapes, dtype=torch.long, device=value.device)
    return _MSDeformAttnCUDAFunction.apply(
        value.contiguous(),
        shapes_t,
        _level_start_index(shapes, value.device),
        sampling_locations.contiguous(),
        attention_weights.contiguous(),
        64,  # im2col_step: images per kernel launch (the kernel caps it at the batch size)
    )


_KERNELS = {"pytorch": ms_deform_attn_core_pytorch, "cuda": _ms_deform_attn_cuda}


def ms_deform_attn(
    value: torch.Tensor,
    value_spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """Multi-scale deformable attention with kernel selection (shapes as in
    :func:`ms_deform_attn_core_pytorch`).

    Args:
        impl: "auto" (compiled CUDA kernel for CUDA tensors when installed, else PyTorch),
            "pytorch", or "cuda" (error when unavailable).
    """
    if impl == "auto":
        impl = "cuda" if value.is_cuda and _cuda_extension() is not None else "pytorch"
    elif impl == "cuda":
        if _cuda_extension() is None:
            raise RuntimeError(
                "impl='cuda' needs the compiled MultiScaleDeformableAttention extension, which is not "
                "installed; use impl='auto' or 'pytorch'"
            )
        if not value.is_cuda:
            raise RuntimeError(f"impl='cuda' needs CUDA tensors, got value on {value.device}")
    elif impl not in _KERNELS:
        raise ValueError(
            f"unknown deformable attention impl {impl!r}; expected 'auto' or one of {sorted(_KERNELS)}"
        )
    return _KERNELS[impl](value, value_spatial_shapes, sampling_locations, attention_weights)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module (projections + sampling).

    Parameter names follow Deformable DETR / Mask2Former so their checkpoints load.
    """

    def __init__(
        self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4, impl: str = "auto"
    ):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        head_dim = d_model // n_heads
        if impl != "pytorch" and head_dim & (head_dim - 1) != 0 and _cuda_extension() is not None:
            # The CUDA kernel is tuned for power-of-two head widths; the result is still exact.
            warnings.warn(
                f"deformable attention head dim {head_dim} is not a power of 2 (slower CUDA kernel)"
            )
        if impl not in ("auto", *_KERNELS):
            raise ValueError(f"unknown deformable attention impl {impl!r}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.impl = impl

        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        # Offsets start as a fixed pattern: head m looks along direction 2*pi*m/M, point k at
        # distance k+1 (in pixels of each level); attention starts uniform.
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        input_spatial_shapes: SpatialShapes,
        input_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """
        Args:
            query: [B, Lq, C].
            reference_points: [B or 1, Lq, L, 2], (x, y) in [0, 1] per level.
            input_flatten: [B, S, C], levels flattened and concatenated.
            input_spatial_shapes: L pairs (H_l, W_l).
            input_padding_mask: [B, S] bool, True at padded positions (they contribute zero).
        Returns:
            [B, Lq, C].
        """
        shapes = _shape_list(input_spatial_shapes)
        bs, n_queries, _ = query.shape
        if len(shapes) != self.n_levels:
            raise ValueError(f"expected {self.n_levels} levels, got spatial shapes {shapes}")
        if input_flatten.shape[1] != sum(h * w for h, w in shapes):
            raise ValueError(
                f"input_flatten has {input_flatten.shape[1]} positions, spatial shapes {shapes} give "
                f"{sum(h * w for h, w in shapes)}"
            )
        if reference_points.shape[-1] != 2 or reference_points.shape[-2] != self.n_levels:
            raise ValueError(
                f"reference_points must be [B, Lq, {self.n_levels}, 2], got {tuple(reference_points.shape)}"
            )

        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(bs, -1, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(
            bs, n_queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = self.attention_weights(query).view(
            bs, n_queries, self.n_heads, self.n_levels * self.n_points
        )
        weights = weights.softmax(-1).view(bs, n_queries, self.n_heads, self.n_levels, self.n_points)
        # Offsets are in pixels of each level: normalise by that level's (W, H).
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=offsets.dtype, device=offsets.device)
        sampling_locations = (
            reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        )
        output = ms_deform_attn(value, shapes, sampling_locations, weights, impl=self.impl)
        return self.output_proj(output)
