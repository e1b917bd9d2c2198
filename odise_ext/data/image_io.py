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
A file that exists but cannot be decoded (truncated, not an image) is an
:class:`UndecodableImageError` (a ``ValueError``).

Dataset files are read here too (the mappers and evaluators of every task), so that no reader
saturates 16-bit files to 255 as ``detectron2.data.detection_utils.read_image`` does:
:func:`read_label_map` (semantic labels, depth: exact integer values of 8- and 16-bit PNG/TIFF)
and :func:`read_panoptic_rgb` (COCO panoptic PNGs: 8-bit RGB, id = R + 256 G + 256^2 B).
For 8-bit files both give what detectron2's reader gives, except palette ("P") label maps,
whose palette indices are the labels (detectron2's "L" conversion gave their grey level).
"""
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageInput", "UndecodableImageError", "as_image_array", "read_image", "read_label_map", "read_panoptic_rgb",
]

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
_FORMATS = ("RGB", "BGR")
# PIL modes of one-channel integer images, and the dtype their values keep
_LABEL_MODES = {"1": np.uint8, "L": np.uint8, "P": np.uint8, "I;16": np.int32, "I;16L": np.int32,
                "I;16B": np.int32, "I;16N": np.int32, "I": np.int32}


class UndecodableImageError(ValueError):
    """An image file that exists but cannot be decoded (truncated, corrupt, not an image)."""


def _decoded(path, transpose: bool = True) -> Image.Image:
    """The fully decoded PIL image of the file ``path`` (EXIF orientation applied if
    ``transpose``); errors name the file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected an image path, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"image '{path}' is a directory, not an image file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as img:
            if transpose:
                img = ImageOps.exif_transpose(img)
            img.load()
            return img
    except UnidentifiedImageError:
        raise UndecodableImageError(f"image '{path}' is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # truncated / corrupt / huge
        raise UndecodableImageError(f"image '{path}' cannot be decoded: {e}") from None


def read_image(path, format: str = "BGR") -> np.ndarray:
    """Decode the image file ``path`` into uint8 [H, W, 3] in ``format`` ("RGB" or "BGR")."""
    img = _decoded(path)
    return as_image_array(img, format=format, name=f"image '{os.fspath(path)}'")


def read_label_map(path, what: str = "label map", *, float_ok: bool = False) -> np.ndarray:
    """[H, W] integer values of a one-channel label / depth file, exactly as stored.

    8-bit files (``L``, ``P``: palette indices, ``1``) give uint8, 16- and 32-bit integer files
    int32 (0..65535 stay exact); with ``float_ok`` a float file (``F``) gives float32. Not EXIF-rotated (as detectron2 reads label maps). Raises
    ``ValueError`` naming the file for colour or float files (``what`` names the role).
    """
    img = _decoded(path, transpose=False)
    dtype = np.float32 if float_ok and img.mode == "F" else _LABEL_MODES.get(img.mode)
    if dtype is None:
        raise ValueError(
            f"{what} '{os.fspath(path)}' is a {img.mode} image; expected one channel of integer labels "
            "(8-bit L / P or 16-bit PNG)"
        )
    return np.asarray(img).astype(dtype)


def read_panoptic_rgb(path) -> np.ndarray:
    """uint8 [H, W, 3] RGB of a COCO panoptic PNG (segment id = R + 256 G + 256^2 B), as
    detectron2's reader gives it; a 16-bit one-channel PNG (which would saturate) is refused."""
    img = _decoded(path, transpose=False)
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        raise ValueError(
            f"panoptic PNG '{os.fspath(path)}' is a 16/32-bit one-channel image ({img.mode}); the COCO "
            "panoptic format stores segment ids as 8-bit RGB (id = R + 256 G + 256^2 B)"
        )
    return np.asarray(img.convert("RGB"))


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
