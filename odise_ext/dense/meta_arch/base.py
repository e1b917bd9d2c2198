"""Plumbing shared by the VPD / Meta-Prompts meta-architectures: pixel normalisation, padding to
the backbone's size divisibility, and dense test-time prediction (whole image or sliding windows,
optionally averaged with the horizontally flipped prediction)."""
from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.structures import ImageList
from torch import nn

from ...engine.model_hooks import EvaluatedModel
from ..sliding_window import sliding_window_inference

__all__ = ["IMAGE_PAD_VALUE", "DenseModel", "dense_model_config"]

# Image padding up to the size divisibility, in the [0, 1] units VPD backbones take: VPD / mmseg
# pad with 0 after x2-1, i.e. 0.5 here.
IMAGE_PAD_VALUE = 0.5


def dense_model_config(cfg) -> dict:
    """The :class:`DenseModel` arguments of ``cfg`` (besides the backbone)."""
    t = cfg.TEST.DENSE
    if bool(t.CROP_SIZE) != bool(t.STRIDE):
        raise ValueError("TEST.DENSE.CROP_SIZE and STRIDE must be set together (or both [])")
    return {
        "pixel_mean": cfg.MODEL.PIXEL_MEAN,
        "pixel_std": cfg.MODEL.PIXEL_STD,
        "test_crop_size": list(t.CROP_SIZE),
        "test_stride": list(t.STRIDE),
        "flip_test": t.FLIP,
    }


class DenseModel(nn.Module, EvaluatedModel):
    """Base of the VPD meta-architectures (not registered itself)."""

    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        test_crop_size: Sequence[int] = (),
        test_stride: Sequence[int] = (),
        flip_test: bool = False,
    ):
        """
        Args:
            backbone: a detectron2 backbone (``VPDBackbone`` or an FPN around it).
            pixel_mean, pixel_std: input normalisation (VPD backbones take [0, 1]: 0 / 255).
            test_crop_size, test_stride: sliding-window test (h, w); empty = whole image.
            flip_test: average with the prediction on the mirrored image.

        Images are padded with :data:`IMAGE_PAD_VALUE` up to the size divisibility.
        """
        super().__init__()
        self.backbone = backbone
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.test_crop_size = list(test_crop_size)
        self.test_stride = list(test_stride)
        self.flip_test = flip_test

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def size_divisibility(self) -> int:
        return self.backbone.size_divisibility

    def preprocess_image(self, batched_inputs: List[dict]) -> List[torch.Tensor]:
        """[3, h, w] images normalised by ``PIXEL_MEAN`` / ``PIXEL_STD`` (the preprocessing step
        every family's meta-architecture names so). Unpadded: padding depends on the test mode
        (:meth:`padded`, :meth:`dense_inference`)."""
        for x in batched_inputs:
            if "image" not in x:
                raise ValueError("every input dict needs an 'image' [3, H, W] tensor")
        return [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]

    def padded(self, images: List[torch.Tensor], pad_value: float = None) -> ImageList:
        """Images (default pad value: :data:`IMAGE_PAD_VALUE`) or targets (pass their pad value)."""
        pad_value = IMAGE_PAD_VALUE if pad_value is None else pad_value
        return ImageList.from_tensors(images, self.size_divisibility, pad_value=pad_value)

    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        """[n, 3, h, w] padded bottom / right with :data:`IMAGE_PAD_VALUE` to the size divisibility."""
        h, w = images.shape[-2:]
        d = self.size_divisibility
        return F.pad(images, (0, (-w) % d, 0, (-h) % d), value=IMAGE_PAD_VALUE)

    def _predict_padded(self, predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``predict`` on [n, 3, h, w] padded to the size divisibility; cropped back."""
        h, w = images.shape[-2:]
        return predict(self._pad(images))[..., :h, :w]

    def dense_inference(
        self, images: List[torch.Tensor], predict: Callable[[torch.Tensor], torch.Tensor]
    ) -> List[torch.Tensor]:
        """Test-time prediction.

        Without sliding windows the images are padded into one batch (one backbone call); with
        them, each image's windows form a batch. The flip test mirrors each unpadded image.

        Args:
            images: [3, h_i, w_i] normalised images.
            predict: [n, 3, H, W] padded images -> [n, K, H, W] dense predictions.
        Returns:
            [K, h_i, w_i] per image.
        """

        def run(batch):
            if self.test_crop_size:
                return [
                    sliding_window_inference(
                        lambda w: self._predict_padded(predict, w), x, self.test_crop_size, self.test_stride
                    )
                    for x in batch
                ]
            padded = self.padded(batch)
            preds = predict(padded.tensor)
            return [p[:, :h, :w] for p, (h, w) in zip(preds, padded.image_sizes)]

        outs = run(images)
        if self.flip_test:
            flipped = run([x.flip(-1) for x in images])
            outs = [0.5 * (o + f.flip(-1)) for o, f in zip(outs, flipped)]
        return outs
