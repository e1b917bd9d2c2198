"""Mask logits at the output resolution, produced in chunks of rows.

Post-processing reads the [Q, H, W] mask logits of one image at its original resolution. Held
whole, that tensor grows with the original image (Q x H x W floats), not with the model's input.
:class:`FullResolutionMasks` stands for it without holding it: it keeps the low-resolution
logits [Q, h, w] and hands out row chunks of ``F.interpolate(low, (H, W), mode="bilinear",
align_corners=False)``, at most ``chunk_pixels`` pixels (x Q) each.

An image whose H x W fits in one chunk is interpolated by ``F.interpolate`` itself, exactly as
before. Larger ones are interpolated here, row window by row window, with the arithmetic of
PyTorch's CPU kernel (``upsample_bilinear2d``, generic channels-first path): source index
``fma(scale, dst + 0.5, -0.5)`` in float32, clamped to >= 0, weights ``l1 = src - floor(src)``,
``l0 = 1 - l1``, and ``fma(l0, a, l1 * b)`` along width, then along height. Fused multiply-adds
are computed in float64 and rounded once to float32. On CPU in float32 each chunk is bitwise
equal to the rows of the full interpolation (tests/mask2former/test_full_resolution.py); other
devices or dtypes may differ from their own kernels by rounding (~1 ulp).
"""

from typing import Iterator, Optional, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_CHUNK_PIXELS", "FullResolutionMasks", "as_full_resolution"]

# 2048 x 1024 output pixels per chunk: every image of the usual benchmarks (COCO, ADE20K,
# Cityscapes) is post-processed in one chunk, as before.
DEFAULT_CHUNK_PIXELS = 2048 * 1024


def _generic_kernel(channels: int, height: int, width: int) -> bool:
    """Whether PyTorch interpolates [1, C, h, w] -> (H, W) by the generic kernel reproduced here.
    It takes a vectorised one, whose rounding differs, for outputs with H + W <= 128 (at most
    4096 pixels) and for 3 channels on one thread: those are always one chunk."""
    return height + width > 128 and not (channels == 3 and torch.get_num_threads() == 1)


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` rounded once to float32 (the float32 product is exact in float64)."""
    return torch.addcmul(c.double(), a.double(), b.double()).float()


def _linear_weights(n_in: int, n_out: int, device) -> Tuple[torch.Tensor, ...]:
    """Source indices i0, i1 [n_out] (long) and weights l0, l1 [n_out] (float32) of 1-D linear
    interpolation n_in -> n_out with align_corners=False, as PyTorch's CPU kernel computes them."""
    if n_in == n_out:
        i = torch.arange(n_out, device=device)
        return i, i, torch.ones(n_out, device=device), torch.zeros(n_out, device=device)
    scale = torch.tensor(n_in, dtype=torch.float32, device=device) / n_out
    dst = torch.arange(n_out, dtype=torch.float32, device=device)
    src = _fma(scale, dst + 0.5, torch.tensor(-0.5, device=device)).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    l1 = (src - i0).clamp(0, 1)
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, 1 - l1, l1


class FullResolutionMasks:
    """[Q, H, W] bilinear upsampling of ``low`` [Q, h, w] (align_corners=False), read in chunks
    of whole rows of at most ``chunk_pixels`` pixels."""

    def __init__(self, low: torch.Tensor, size: Tuple[int, int], *, chunk_pixels: int = DEFAULT_CHUNK_PIXELS):
        if low.dim() != 3:
            raise ValueError(f"expected low-resolution mask logits [Q, h, w], got {tuple(low.shape)}")
        if int(chunk_pixels) < 1:
            raise ValueError(f"chunk_pixels must be >= 1, got {chunk_pixels}")
        self.low = low
        self.size = (int(size[0]), int(size[1]))
        self.chunk_pixels = int(chunk_pixels)
        # queries selected so far (None: all); applied after F.interpolate in the one-chunk path,
        # which then runs on all Q channels exactly as before (PyTorch's kernel choice depends on Q)
        self.index: Optional[torch.Tensor] = None

    @property
    def shape(self) -> torch.Size:
        q = self.low.shape[0] if self.index is None else self.index.shape[0]
        return torch.Size((q, *self.size))

    @property
    def dtype(self) -> torch.dtype:
        return self.low.dtype

    @property
    def device(self) -> torch.device:
        return self.low.device

    def select(self, index: torch.Tensor) -> "FullResolutionMasks":
        """The masks of the queries ``index`` (bool mask or indices over the current queries)."""
        out = FullResolutionMasks(self.low, self.size, chunk_pixels=self.chunk_pixels)
        base = torch.arange(self.low.shape[0], device=self.low.device) if self.index is None else self.index
        out.index = base[index]
        return out

    def rows_per_chunk(self) -> int:
        height, width = self.size
        if height * width <= self.chunk_pixels or not _generic_kernel(self.low.shape[0], height, width):
            return height
        return max(1, self.chunk_pixels // max(width, 1))

    def row_chunks(self) -> Iterator[Tuple[int, int, torch.Tensor]]:
        """Yields (r0, r1, logits [Q, r1 - r0, W]) covering rows 0..H in order."""
        height, width = self.size
        step = self.rows_per_chunk()
        if step >= height:
            full = F.interpolate(self.low[None], size=self.size, mode="bilinear", align_corners=False)[0]
            yield 0, height, full if self.index is None else full[self.index]
            return
        h, w = self.low.shape[-2:]
        i0, i1, l0, l1 = _linear_weights(h, height, self.low.device)
        j0, j1, m0, m1 = _linear_weights(w, width, self.low.device)
        for r0 in range(0, height, step):
            r1 = min(r0 + step, height)
            yield r0, r1, self._rows(i0[r0:r1], i1[r0:r1], l0[r0:r1], l1[r0:r1], j0, j1, m0, m1)

    def _rows(self, i0, i1, l0, l1, j0, j1, m0, m1) -> torch.Tensor:
        # channels are interpolated independently here: select them first
        low = (self.low if self.index is None else self.low[self.index]).float()

        def along_width(rows: torch.Tensor) -> torch.Tensor:  # [Q, n, w] -> [Q, n, W]
            return _fma(m0, rows[..., j0], m1 * rows[..., j1])

        top, bottom = along_width(low[:, i0]), along_width(low[:, i1])
        return _fma(l0[:, None], top, l1[:, None] * bottom).to(self.low.dtype)


class _HeldMasks:
    """A [Q, H, W] tensor already at full resolution, as one chunk."""

    def __init__(self, masks: torch.Tensor):
        self.masks = masks
        self.shape, self.dtype, self.device = masks.shape, masks.dtype, masks.device

    def select(self, index: torch.Tensor) -> "_HeldMasks":
        return _HeldMasks(self.masks[index])

    def row_chunks(self) -> Iterator[Tuple[int, int, torch.Tensor]]:
        yield 0, self.masks.shape[1], self.masks


MaskSource = Union[FullResolutionMasks, _HeldMasks]


def as_full_resolution(mask_pred: Union[torch.Tensor, FullResolutionMasks]) -> MaskSource:
    """``mask_pred`` as a source of row chunks (a tensor is one chunk)."""
    if isinstance(mask_pred, FullResolutionMasks):
        return mask_pred
    if isinstance(mask_pred, torch.Tensor):
        return _HeldMasks(mask_pred)
    raise TypeError(f"expected mask logits as a tensor or FullResolutionMasks, got {type(mask_pred).__name__}")
