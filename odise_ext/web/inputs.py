"""Turning what a user uploads or types into model inputs, with a message for every bad input.

Every function here raises :class:`InputError` (never anything else for bad input): the page
shows its message; programming errors still raise normally.
"""
import os
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..utils.input_checks import InputError

__all__ = ["InputError", "MAX_UPLOAD_BYTES", "MIN_IMAGE_SIDE", "load_image", "to_rgb"]

# Smaller images hold too little to segment (the tiny configs' model input is 64-128 px).
MIN_IMAGE_SIDE = 16
# Largest upload accepted (tools/web_demo.py passes it to Gradio, which refuses bigger uploads
# while receiving them; the handlers refuse and delete a bigger file that still arrives).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image -> uint8 RGB [H, W, 3].

    Grayscale is expanded to three channels; 16-bit samples are scaled to 8 bits (value / 257,
    so 65535 -> 255; PIL's 32-bit integer mode "I" too, unless all its values fit in 8 bits);
    float images are taken as [0, 1] when their maximum is at most 1, else as [0, 255]; alpha is
    dropped (not composited); palette, CMYK, YCbCr, LAB and HSV images go through PIL's
    conversion to RGB (16-bit RGB files are read by PIL as 8-bit RGB).
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image).astype(np.float64)
        if mode == "I" and arr.size and arr.max() <= 255 and arr.min() >= 0:
            gray = arr  # an 8-bit image stored as 32-bit integers
        else:
            gray = arr / 257.0
        return _expand(np.clip(np.round(gray), 0, 255).astype(np.uint8))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        return _expand(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8))
    if mode in ("1", "L"):
        return _expand(np.asarray(image.convert("L")))
    if mode == "LA":
        return _expand(np.asarray(image.getchannel("L")))
    if mode in ("RGBA", "RGBa", "RGBX"):
        return np.ascontiguousarray(np.asarray(image)[:, :, :3])
    return np.asarray(image.convert("RGB"))


def _expand(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def load_image(path: Optional[str], max_pixels: int = 4096 * 4096, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """An uploaded file -> uint8 RGB [H, W, 3] (EXIF orientation applied).

    Raises:
        InputError: no file, a file over ``max_bytes`` (deleted: it is not kept), not an image,
            an image over ``max_pixels`` (``DATA.MAX_INPUT_PIXELS``; refused before decoding), a
            truncated/corrupt image, or an image with a side under :data:`MIN_IMAGE_SIDE` pixels.
    """
    if not path:
        raise InputError("No image: upload an image file (PNG, JPEG, ...) first.")
    size = os.path.getsize(path)
    if size > max_bytes:
        os.remove(path)
        raise InputError(f"The file is {size / 2**20:.1f} MB; the demo takes uploads up to {max_bytes / 2**20:.0f} MB.")
    try:
        with Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise InputError(f"The image is {im.width}x{im.height} = {im.width * im.height} pixels; the demo takes "
                                 f"up to {max_pixels} (DATA.MAX_INPUT_PIXELS).")
            im.load()  # decode now: a truncated file fails here, not later in the model
            im = ImageOps.exif_transpose(im)
            rgb = to_rgb(im)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError("The uploaded file is not an image that PIL can read (PNG, JPEG, WebP, TIFF, ...).")
    except Image.DecompressionBombError as e:
        raise InputError(f"The image is too large to process: {e}")
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated / corrupt data
        raise InputError(f"The image file is corrupt or truncated ({e}).")
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(f"The image is {w}x{h} pixels; the demo needs at least {MIN_IMAGE_SIDE} pixels per side.")
    return rgb
