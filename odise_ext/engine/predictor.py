"""Single-image inference that checks its input: detectron2's ``DefaultPredictor`` plus
:mod:`odise_ext.data.image_io`.

    predictor = Predictor(cfg)
    predictor("photo.jpg")            # a path, a PIL image or an (H, W[, C]) BGR numpy array
    predictor(Image.open("photo.png"))
    predictor(bgr, vocabulary=vocab)  # keyword arguments go to the model's forward (here ODISE's)

``DefaultPredictor`` takes only a BGR uint8-range (H, W, 3) array and fails with foreign errors
(or, for a float image in [0, 1], silently predicts on an almost black image) otherwise; this
class accepts or refuses every input by the rules of ``image_io``. It also resizes images of
extreme aspect ratio (e.g. 20 x 10000) that ``ResizeShortestEdge`` would shrink to 0 pixels:
each side keeps at least 1 pixel. A bad ``MODEL.WEIGHTS`` file is named before the model is
built (``weights_file``), and the weights are read by :class:`SafeCheckpointer` (no code from the
file runs; detectron2's own ``DefaultPredictor`` reads ``.pkl`` files with full pickle, so
``setup_cfg`` checks a ``.pkl`` ``MODEL.WEIGHTS`` before any model is built). Images over ``DATA.MAX_INPUT_PIXELS`` pixels are refused.
"""
import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..config.checks import check_cfg
from ..data.image_io import ImageInput, as_image_array
from .safe_checkpoint import SafeCheckpointer
from .weights_file import check_weights_file

__all__ = ["Predictor", "ResizeShortestEdgeAtLeastOne", "check_image_pixels"]


def check_image_pixels(height: int, width: int, max_pixels: int, name: str = "") -> None:
    """Refuse an image over ``DATA.MAX_INPUT_PIXELS`` (call it with the header's size, before
    decoding). Raises ValueError naming the image, its size, the cap and the key to raise it."""
    if height * width > max_pixels:
        raise ValueError(
            f"image '{name or 'input'}' is {width}x{height} = {height * width} pixels, over "
            f"DATA.MAX_INPUT_PIXELS = {max_pixels}: shrink it, or raise DATA.MAX_INPUT_PIXELS (outputs are at "
            f"the input's resolution, so memory grows with its pixels)")


class ResizeShortestEdgeAtLeastOne(T.ResizeShortestEdge):
    """``ResizeShortestEdge`` whose output keeps at least 1 pixel per side."""

    @torch.jit.unused
    def get_transform(self, image):
        h, w = image.shape[:2]
        t = super().get_transform(image)
        if isinstance(t, T.ResizeTransform):
            return T.ResizeTransform(h, w, max(1, t.new_h), max(1, t.new_w), t.interp)
        return t


def at_least_one_pixel(aug):
    """``aug`` with a 1-pixel floor if it is a ``ResizeShortestEdge`` (else unchanged)."""
    if isinstance(aug, T.ResizeShortestEdge) and not isinstance(aug, ResizeShortestEdgeAtLeastOne):
        return ResizeShortestEdgeAtLeastOne(aug.short_edge_length, aug.max_size, aug.sample_style, aug.interp)
    return aug


class Predictor(DefaultPredictor):
    """``DefaultPredictor`` (weights from ``MODEL.WEIGHTS``, ``INPUT.*_SIZE_TEST`` resize, output
    at the input's resolution) that takes any :data:`~odise_ext.data.image_io.ImageInput`."""

    def __init__(self, cfg):  # DefaultPredictor.__init__, reading the weights with SafeCheckpointer
        check_cfg(cfg, world_size=1)  # a bad value named before the model is built
        check_weights_file(cfg.MODEL.WEIGHTS)
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        SafeCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = at_least_one_pixel(T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST))
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT={self.input_format!r}: the predictor takes 'RGB' or 'BGR'")

    def load(self, image: ImageInput, name: str = "") -> np.ndarray:
        """The checked input as BGR uint8 [H, W, 3] (see ``image_io``)."""
        return as_image_array(image, format="BGR", name=name)

    def __call__(self, image: ImageInput, **model_kwargs):
        """
        Args:
            image: a path, a PIL image, or a BGR numpy array (see ``odise_ext.data.image_io``).
            model_kwargs: keyword arguments of this call's model forward (e.g. ODISE's
                ``vocabulary``); none: exactly ``DefaultPredictor``'s call.
        Returns:
            the model's output dict for this image.
        """
        original_image = self.load(image)
        check_image_pixels(*original_image.shape[:2], self.cfg.DATA.MAX_INPUT_PIXELS)
        if not model_kwargs:
            return super().__call__(original_image)
        with torch.no_grad():  # DefaultPredictor's pre-processing, then the call with the keywords
            if self.input_format == "RGB":
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            resized = self.aug.get_transform(original_image).apply_image(original_image)
            tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
            return self.model([{"image": tensor, "height": height, "width": width}], **model_kwargs)[0]
