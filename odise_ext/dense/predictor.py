"""``DefaultPredictor``-style single-image inference for the VPD / Meta-Prompts tasks.

    predictor = DensePredictor(cfg)
    predictor(bgr)                                   # {"sem_seg": [K, H, W]} or {"depth": [H, W]}
    predictor(bgr, scene="kitchen")                  # VPD depth (SceneClassPrompt): {"depth": [H, W]}
    predictor(bgr, sentence="the red circle")        # {"ref_mask": [H, W] probability}
    predictor(bgr, boxes=[[x0, y0, x1, y1], ...])    # {"instances": ... pred_keypoints [M, K, 3]}

Like :class:`odise_ext.engine.predictor.Predictor`: builds the model, loads ``MODEL.WEIGHTS``,
takes an image (path, PIL, BGR array; checked by ``odise_ext.data.image_io``), resizes it as the
task's test mapper does (``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``; referring segmentation: the fixed ``DATA.REFER.SIZE``) and returns
the model's output at the original resolution. Boxes are given in original-image pixels.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.modeling import META_ARCH_REGISTRY

from ..engine.predictor import Predictor

__all__ = ["DensePredictor"]


class DensePredictor(Predictor):
    def __init__(self, cfg):
        super().__init__(cfg)
        # A meta-architecture whose test mapper resizes differently from DefaultPredictor's
        # ResizeShortestEdge says so in ``test_augmentation(cfg)`` (None: keep the size).
        test_augmentation = getattr(META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE), "test_augmentation", None)
        if test_augmentation is not None:
            self.aug = test_augmentation(cfg)

    def __call__(
        self,
        original_image: np.ndarray,
        *,
        sentence: Optional[str] = None,
        boxes: Optional[Sequence] = None,
        scene: Optional[str] = None,
    ):
        """
        Args:
            original_image: a path, a PIL image or a BGR array (``odise_ext.data.image_io``).
            sentence: the referring expression (referring segmentation).
            boxes: [M, 4] XYXY person boxes in ``original_image`` pixels (pose).
            scene: the image's scene class (VPD depth, ``MODEL.VPD.PROMPT.SCENE_CLASSES``).
        Returns:
            The model's output dict for this image.
        """
        original_image = self.load(original_image)
        with torch.no_grad():
            if self.input_format == "RGB":
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            transform = T.NoOpTransform() if self.aug is None else self.aug.get_transform(original_image)
            image = transform.apply_image(original_image)
            inputs = {
                "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
                "height": height,
                "width": width,
            }
            if sentence is not None:
                inputs["sentence"] = sentence
            if scene is not None:
                inputs["scene"] = scene
            if boxes is not None:
                boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
                inputs["boxes"] = torch.as_tensor(transform.apply_box(boxes))
            return self.model([inputs])[0]
