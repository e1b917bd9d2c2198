"""Reading and checking the images users give to the demos and predictors.

One place decides what an input image may be, so that ``tools/demo.py``, the predictors
(:class:`odise_ext.engine.predictor.Predictor`, ``DensePredictor``) and the web demo accept the
same inputs and refuse the same ones with a message naming the input:

- a path (str / ``os.PathLike``): decoded with PIL (EXIF orientation applied);
- a ``PIL.Image``;
- a numpy array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (alpha dropped), in the caller's
  channel order (BGR for the predictors, as ``cv2.imread`` returns).

Every image becomes uint8 [H, W, 3]. Pixel values: uint8 as is; 16-bit (uint16 arrays,
``I;16`` / ``I`` PIL images) scaled from 0..65535 to 0..255 (``round(v / 257)``); other integer
arrays must hold 0..255; float arrays must hold 0..255 (detectron2's convention) and are
refused when every value is in [0, 1] (a [0, 1]-scaled image read as 0..255 is almost black).
Grayscale is repeated on three channels. Refused with ``ValueError`` / ``TypeError`` /
``FileNotFoundError``: ``None`` (what ``cv2.imread`` returns for an unreadable file), empty
images, NaN/inf, booleans, other channel counts, torch tensors (their layout is ambiguous).
"""
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageInput", "as_image_array", "read_image"]

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
_FORMATS = ("RGB", "BGR")


def read_image(path, format: str = "BGR") -> np.ndarray:
    """Decode the image file ``path`` into uint8 [H, W, 3] in ``format`` ("RGB" or "BGR")."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected an image path, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"image '{path}' is a directory, not an image file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except UnidentifiedImageError:
        raise ValueError(f"image '{path}' is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # truncated / corrupt / huge
        raise ValueError(f"image '{path}' cannot be decoded: {e}") from None
    return as_image_array(img, format=format, name=f"image '{path}'")


def _from_pil(img: Image.Image, name: str) -> np.ndarray:
    """PIL image -> uint8 RGB [H, W, 3]."""
    if img.width == 0 or img.height == 0:
        raise ValueError(f"{name} is empty ({img.width}x{img.height} pixels)")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (PIL opens 16-bit PNGs as I;16 or I): keep the full range visible
        return _to_uint8(np.asarray(img).astype(np.int64), name, sixteen_bit=True)[..., None].repeat(3, axis=2)
    if img.mode == "F":
        return _expand(_to_uint8(np.asarray(img), name), name)
    return np.asarray(img.convert("RGB"))


def _to_uint8(a: np.ndarray, name: str, sixteen_bit: bool = False) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        raise ValueError(f"{name} is a boolean array: give pixel values (uint8 0..255)")
    if a.dtype == np.uint16 or sixteen_bit:
        if a.min() < 0 or a.max() > 65535:
            raise ValueError(f"{name}: 16-bit values out of 0..65535 (range {a.min()}..{a.max()})")
        return np.round(a / 257.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: {a.dtype} values {lo}..{hi} are outside 0..255; give uint8 pixels")
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: float values {lo:g}..{hi:g} are outside 0..255")
        if hi <= 1.0 and hi > 0:
            raise ValueError(
                f"{name} is a float array with values in [0, 1]; pixels are read as 0..255, so scale it: "
                "(image * 255).round().astype(np.uint8)"
            )
        return np.round(a).astype(np.uint8)
    raise TypeError(f"{name} has dtype {a.dtype}; expected uint8 (or uint16, integer, float 0..255)")


def _expand(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 4:
        return a[..., :3]  # alpha is not part of the picture
    if a.ndim == 3 and a.shape[2] == 3:
        return a
    raise ValueError(f"{name} has shape {a.shape}; expected [H, W] or [H, W, C] with C in 1, 3, 4")


def as_image_array(image: ImageInput, *, format: str = "BGR", name: str = "") -> np.ndarray:
    """Any accepted input (see module doc) -> contiguous uint8 [H, W, 3] in ``format``.

    A path or PIL image is decoded as RGB and converted to ``format``; an array is taken to be
    in ``format`` already. ``name`` names the input in error messages.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    name = name or "image"
    if image is None:
        raise ValueError(f"{name} is None (cv2.imread returns None for a missing or unreadable file)")
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, format=format)
    if isinstance(image, Image.Image):
        rgb = _from_pil(image, name)
        return np.ascontiguousarray(rgb[:, :, ::-1] if format == "BGR" else rgb)
    if not isinstance(image, np.ndarray):
        kind = type(image).__module__.split(".")[0] + "." + type(image).__name__
        hint = " (convert it: tensor.permute(1, 2, 0).cpu().numpy() for [3, H, W])" if kind.startswith("torch") else ""
        raise TypeError(f"{name} is a {kind}; expected a path, a PIL image or a numpy array{hint}")
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"{name} has shape {image.shape}; expected a non-empty [H, W] or [H, W, C] array")
    return np.ascontiguousarray(_expand(_to_uint8(image, name), name))
