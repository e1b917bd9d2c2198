"""Top-down keypoint estimation on person crops with a diffusion backbone.

Each (ground-truth or given) person box is turned into a fixed-size crop (aspect-corrected,
x``BOX_SCALE``; random scale / rotation in training, see ``vpd.person_crops``), the crops go
through the backbone and the heatmap head (``MODEL.POSE_HEAD``), trained with the weighted
heatmap MSE against Gaussian targets. Inference decodes the heatmaps (optionally averaged with
the flipped crops' heatmaps) and maps the keypoints back to the image: COCO's "GT boxes"
protocol when the boxes are the ground-truth boxes.
"""
import math

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.structures import Boxes, Instances
from torch import nn

from ..heads import build_pose_head, decode_heatmaps
from ..person_crops import crop_geometry, crop_images, crop_to_image, gaussian_heatmaps, image_to_crop
from .base import DenseModel, dense_model_config

__all__ = ["DensePoseEstimator"]


@META_ARCH_REGISTRY.register()
class DensePoseEstimator(DenseModel):
    """
    Inputs: dicts with ``image`` [3, H, W] (RGB, 0-255), optional ``height``/``width``, and the
    boxes: ``instances`` with ``gt_boxes`` (and ``gt_keypoints`` in training), or ``boxes``
    ([M, 4] XYXY tensor in input pixels, inference only).
    Outputs (inference): ``{"instances": Instances}`` with ``pred_boxes``, ``scores``,
    ``pred_classes`` (0) and ``pred_keypoints`` [M, K, 3] (x, y, score) at ``height`` x ``width``.
    """

    # COCO scores keypoints only: the boxes are inputs (COCO's GT-boxes protocol), not predictions.
    coco_eval_tasks = ("keypoints",)

    @configurable
    def __init__(
        self,
        *,
        pose_head: nn.Module,
        crop_size,
        box_scale: float,
        scale_jitter: float,
        rotation: float,
        sigma: float,
        **kwargs,
    ):
        """
        Args:
            pose_head: ``head(features, targets=, target_weights=)`` -> (heatmaps, losses), with
                ``flip_test(heatmaps, heatmaps_flipped)``.
            crop_size: (Hc, Wc) of the person crops.
            box_scale: box enlargement; scale_jitter, rotation (degrees): training augmentation.
            sigma: Gaussian target sigma (heatmap pixels).
            kwargs: see :class:`DenseModel` (``flip_test`` switches the flip test).
        """
        super().__init__(**kwargs)
        if len(crop_size) != 2 or any(c % self.size_divisibility for c in crop_size):
            raise ValueError(
                f"pose crop size {list(crop_size)} must be two sides divisible by {self.size_divisibility}"
            )
        self.pose_head = pose_head
        self.crop_size = tuple(int(c) for c in crop_size)
        self.box_scale = box_scale
        self.scale_jitter = scale_jitter
        self.rotation = rotation
        self.sigma = sigma

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        k = cfg.DATA.POSE
        return {
            "backbone": backbone,
            "pose_head": build_pose_head(cfg, backbone.output_shape()),
            "crop_size": list(k.CROP_SIZE),
            "box_scale": k.BOX_SCALE,
            "scale_jitter": k.SCALE_JITTER,
            "rotation": k.ROTATION,
            "sigma": k.SIGMA,
            **dense_model_config(cfg),
        }

    def _heatmaps(self, crops):
        heatmaps, _ = self.pose_head(self.backbone(crops))
        return heatmaps

    def _gather(self, batched_inputs, with_keypoints):
        boxes, keypoints, index = [], [], []
        for i, x in enumerate(batched_inputs):
            if "instances" in x:
                inst = x["instances"].to(self.device)
                b = inst.gt_boxes.tensor
                if with_keypoints:
                    kp = inst.gt_keypoints.tensor
                    keep = (kp[..., 2] > 0).any(dim=1)  # crops without a labelled keypoint teach nothing
                    b, kp = b[keep], kp[keep]
                    keypoints.append(kp)
            elif "boxes" in x and not with_keypoints:
                b = torch.as_tensor(x["boxes"], dtype=torch.float32, device=self.device).reshape(-1, 4)
            else:
                raise ValueError("pose inputs need 'instances' (gt_boxes / gt_keypoints) or 'boxes'")
            boxes.append(b)
            index.append(torch.full((len(b),), i, dtype=torch.long, device=self.device))
        kp = torch.cat(keypoints) if with_keypoints else None
        return torch.cat(boxes), kp, torch.cat(index)

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        padded = self.padded(images).tensor
        if self.training:
            return self._losses(batched_inputs, padded)
        return self._inference(batched_inputs, padded, [tuple(im.shape[-2:]) for im in images])

    def _losses(self, batched_inputs, padded):
        boxes, keypoints, index = self._gather(batched_inputs, with_keypoints=True)
        if len(boxes) == 0:
            # No labelled person in the batch: a zero loss that still touches every parameter.
            return {"loss_keypoint": sum(p.sum() for p in self.pose_head.parameters()) * 0.0}
        m = len(boxes)
        jitter = 1.0 + (torch.rand(m, device=self.device) * 2 - 1) * self.scale_jitter
        angle = (torch.rand(m, device=self.device) * 2 - 1) * math.radians(self.rotation)
        geom = crop_geometry(boxes, self.crop_size, self.box_scale, jitter, angle)
        crops = crop_images(padded, index, geom, self.crop_size)
        heatmaps = self._heatmaps(crops)
        stride = self.crop_size[1] / heatmaps.shape[-1]
        points = image_to_crop(keypoints[..., :2], geom, self.crop_size) / stride - 0.5
        targets, weights = gaussian_heatmaps(points, keypoints[..., 2] > 0, heatmaps.shape[-2:], self.sigma)
        loss = self.pose_head.heatmap_loss(heatmaps, targets, weights)
        return {"loss_keypoint": self.pose_head.loss_weight * loss}

    def _inference(self, batched_inputs, padded, sizes):
        boxes, _, index = self._gather(batched_inputs, with_keypoints=False)
        results = []
        if len(boxes):
            geom = crop_geometry(boxes, self.crop_size, self.box_scale)
            crops = crop_images(padded, index, geom, self.crop_size)
            heatmaps = self._heatmaps(crops)
            if self.flip_test:
                heatmaps = self.pose_head.flip_test(heatmaps, self._heatmaps(crops.flip(-1)))
            coords, scores = decode_heatmaps(heatmaps)
            stride = self.crop_size[1] / heatmaps.shape[-1]
            xy = crop_to_image((coords + 0.5) * stride, geom, self.crop_size)
        for i, (x, (h, w)) in enumerate(zip(batched_inputs, sizes)):
            out_h, out_w = x.get("height", h), x.get("width", w)
            sel = (index == i).nonzero().flatten() if len(boxes) else []
            inst = Instances((out_h, out_w))
            scale = torch.tensor([out_w / w, out_h / h], device=self.device)
            if len(sel):
                kp = torch.cat([xy[sel] * scale, scores[sel, :, None]], dim=-1)
                inst.pred_boxes = Boxes(boxes[sel] * scale.repeat(2))
                # SimpleBaseline's rescoring: mean confidence of the keypoints (box score 1).
                inst.scores = scores[sel].clamp(min=0).mean(dim=1)
                inst.pred_classes = torch.zeros(len(sel), dtype=torch.long, device=self.device)
                inst.pred_keypoints = kp
            else:
                inst.pred_boxes = Boxes(torch.zeros(0, 4, device=self.device))
                inst.scores = torch.zeros(0, device=self.device)
                inst.pred_classes = torch.zeros(0, dtype=torch.long, device=self.device)
                inst.pred_keypoints = torch.zeros(0, 0, 3, device=self.device)
            results.append({"instances": inst})
        return results
