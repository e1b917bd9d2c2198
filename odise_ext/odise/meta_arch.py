"""ODISE: open-vocabulary panoptic segmentation with a frozen diffusion backbone.

Pipeline: padded images -> the diffusion backbone (``MODEL.BACKBONE.NAME``, ODISE's
``WindowedDiffusionBackbone``: frozen SD UNet/VAE on sliding windows, prompted by the implicit
captioner) -> Mask2Former head whose class head is open-vocabulary (mask embeddings vs CLIP text
embeddings) -> at test time, fusion with per-mask CLIP classification (geometric ensemble) ->
Mask2Former semantic / panoptic / instance inference.
"""
import logging
from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList
from detectron2.utils.logger import log_first_n
from torch import nn

from ..diffusion.backbone import build_diffusion_backbone
from ..engine.model_hooks import EvaluatedModel
from .clip import CLIP_MEAN, CLIP_STD, build_clip
from ..mask2former.criterion import ClassLoss, SetCriterion, build_loss_term
from ..mask2former.full_resolution import DEFAULT_CHUNK_PIXELS, FullResolutionMasks
from ..mask2former.mask_former_head import MaskFormerHead
from ..mask2former.postprocessing import instance_inference, panoptic_inference, semantic_inference
from ..mask2former.transformer_decoder.class_head import CLASS_HEAD_REGISTRY, build_class_head
from .open_vocab import (OpenVocabClassHead, TextEmbeddingCache, VocabularyEmbedding, caption_grounding_loss,
                         geometric_ensemble, mask_clip_embed)
from .open_vocab.heads import synonym_max
from .open_vocab.vocabulary import Vocabulary, dataset_vocabulary, parse_vocabulary
from .vocabulary_remap import vocabulary_evaluators

__all__ = ["ODISE"]

# ODISE pads its inputs to a multiple of 64 (its Mask2Former SIZE_DIVISIBILITY, the UNet's own
# divisibility at 512-px windows), beyond the 32 the windowed backbone's feature grid needs.
ODISE_PAD_DIVISIBILITY = 64
logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class ODISE(nn.Module, EvaluatedModel):
    """
    Inputs (detectron2 format): list of dicts with ``image`` uint8 [3, H, W] RGB, optional
    ``height``/``width`` (output size), and in training ``instances`` (``gt_classes`` [N],
    ``gt_masks`` [N, H, W]) and, for the caption model, ``caption_phrases`` (list of str).
    Outputs (inference): per image a dict with ``sem_seg`` [K, h, w] probabilities,
    ``panoptic_seg`` (id map [h, w], segments_info) and ``instances``, as enabled, for the K
    classes of the call's ``vocabulary`` (default: the model's test vocabulary).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone,
        clip,
        sem_seg_head,
        criterion,
        train_vocabulary: Vocabulary,
        test_vocabulary: Vocabulary,
        size_divisibility: int,
        object_mask_threshold: float,
        overlap_threshold: float,
        test_topk_per_image: int,
        semantic_on: bool,
        panoptic_on: bool,
        instance_on: bool,
        clip_ensemble: bool,
        alpha: float,
        beta: float,
        label_template: str,
        clip_template: str,
        caption_loss_weight: float,
        reference_preprocessing: bool,
        pixel_mean,
        pixel_std,
        mask_clip_sdpa: bool = True,
        postprocess_chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    ):
        super().__init__()
        self.backbone = backbone
        self.clip = clip
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        self.train_vocabulary = train_vocabulary
        self.size_divisibility = size_divisibility
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.test_topk_per_image = test_topk_per_image
        self.semantic_on, self.panoptic_on, self.instance_on = semantic_on, panoptic_on, instance_on
        self.clip_ensemble = clip_ensemble
        self.alpha, self.beta = alpha, beta
        self.label_template, self.clip_template = label_template, clip_template
        self.caption_loss_weight = caption_loss_weight
        self.reference_preprocessing = reference_preprocessing
        # ODISE's backbone and CLIP branch take RGB in [0, 1]: PIXEL_MEAN 0, PIXEL_STD 255.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.mask_clip_sdpa = mask_clip_sdpa
        self.postprocess_chunk_pixels = postprocess_chunk_pixels
        self.text_cache = TextEmbeddingCache(clip.encode_text)
        self.set_test_vocabulary(test_vocabulary)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_diffusion_backbone(cfg)
        # One frozen CLIP for the implicit captioner and the classifier: the backbone's if its
        # prompt module has one.
        prompt = backbone.prompt
        clip = prompt.shared_clip
        if clip is None:
            clip = build_clip(cfg)
        head_cls = CLASS_HEAD_REGISTRY.get(cfg.MODEL.MASK_FORMER.CLASS_HEAD_NAME)
        if not (isinstance(head_cls, type) and issubclass(head_cls, OpenVocabClassHead)):
            raise TypeError(
                f"ODISE classifies with a vocabulary: MODEL.MASK_FORMER.CLASS_HEAD_NAME must be 'OpenVocabClassHead', "
                f"got {cfg.MODEL.MASK_FORMER.CLASS_HEAD_NAME!r}"
            )
        class_head = build_class_head(cfg, clip=clip)
        sem_seg_head = MaskFormerHead(cfg, backbone.output_shape(), class_head=class_head)

        train_name = cfg.MODEL.ODISE.TRAIN_VOCABULARY_DATASET or (cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "")
        if not train_name:
            raise ValueError("set DATASETS.TRAIN or MODEL.ODISE.TRAIN_VOCABULARY_DATASET: ODISE needs its training classes")
        train_vocab = Vocabulary.from_metadata(MetadataCatalog.get(train_name))
        if cfg.MODEL.ODISE.TEST_VOCABULARY:
            test_vocab = parse_vocabulary(cfg.MODEL.ODISE.TEST_VOCABULARY)
            if cfg.DATASETS.TEST:
                # classes named like a test-dataset class are things / stuff as there (the
                # evaluators score them that way); the others stay things
                test_vocab = test_vocab.with_things_from(dataset_vocabulary(MetadataCatalog.get(cfg.DATASETS.TEST[0])))
        elif cfg.DATASETS.TEST:
            test_vocab = Vocabulary.from_metadata(MetadataCatalog.get(cfg.DATASETS.TEST[0]))
        else:
            test_vocab = train_vocab
        test = cfg.MODEL.MASK_FORMER.TEST
        return {
            "backbone": backbone,
            "clip": clip,
            "sem_seg_head": sem_seg_head,
            "criterion": cls._build_criterion(cfg, num_classes=len(train_vocab)),
            "train_vocabulary": train_vocab,
            "test_vocabulary": test_vocab,
            "size_divisibility": max(backbone.size_divisibility, ODISE_PAD_DIVISIBILITY),
            "object_mask_threshold": test.OBJECT_MASK_THRESHOLD,
            "overlap_threshold": test.OVERLAP_THRESHOLD,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "semantic_on": test.SEMANTIC_ON,
            "panoptic_on": test.PANOPTIC_ON,
            "instance_on": test.INSTANCE_ON,
            "clip_ensemble": cfg.MODEL.ODISE.CLIP_ENSEMBLE,
            "alpha": cfg.MODEL.ODISE.ALPHA,
            "beta": cfg.MODEL.ODISE.BETA,
            "label_template": cfg.MODEL.ODISE.LABEL_TEMPLATE,
            "clip_template": cfg.MODEL.ODISE.CLIP_TEMPLATE,
            "caption_loss_weight": cfg.MODEL.ODISE.CAPTION.LOSS_WEIGHT if cfg.MODEL.ODISE.CAPTION.ENABLED else 0.0,
            "reference_preprocessing": cfg.MODEL.ODISE.REFERENCE_PREPROCESSING,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "mask_clip_sdpa": cfg.MODEL.SPEED.SDPA,
            "postprocess_chunk_pixels": test.POSTPROCESS_CHUNK_PIXELS,
        }

    @staticmethod
    def _build_criterion(cfg, num_classes):
        """The config's loss terms, with the class term sized by the training vocabulary
        (not ``SEM_SEG_HEAD.NUM_CLASSES``: ODISE's classes are data)."""
        mf = cfg.MODEL.MASK_FORMER
        terms = {}
        for name in mf.LOSSES:
            if name == "ClassLoss":
                terms[name] = ClassLoss(num_classes=num_classes, no_object_weight=mf.NO_OBJECT_WEIGHT, weight=mf.CLASS_WEIGHT)
            else:
                terms[name] = build_loss_term(cfg, name)
        return SetCriterion(cfg, loss_terms=terms)

    @property
    def class_head(self):
        return self.sem_seg_head.class_head

    @property
    def device(self):
        return next(self.sem_seg_head.parameters()).device

    def set_test_vocabulary(self, vocabulary: Vocabulary):
        """The default classes to recognise at test time (the evaluated ones: see
        :meth:`prepare_evaluators`); a call may pass its own (``forward(..., vocabulary=)``).
        Text embeddings are computed once and cached."""
        self.test_vocabulary = self._checked(vocabulary)

    @staticmethod
    def _checked(vocabulary) -> Vocabulary:
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"expected a Vocabulary, got {type(vocabulary).__name__}")
        return vocabulary

    def prepare_evaluators(self, cfg, dataset_name, evaluators):
        """Predictions are indices into the test vocabulary: converted to the dataset's ids by class
        name, or ``ValueError`` when the dataset's metrics are not defined for the vocabulary
        (:mod:`~odise_ext.odise.vocabulary_remap`)."""
        return vocabulary_evaluators(evaluators, self.test_vocabulary, MetadataCatalog.get(dataset_name))

    # ------------------------------------------------------------------ forward
    def forward(self, batched_inputs, *, vocabulary: Optional[Vocabulary] = None):
        """``vocabulary``: the classes of this call at test time (None: the model's test
        vocabulary); training always uses the training vocabulary."""
        if self.training and vocabulary is not None:
            raise ValueError("ODISE trains on its training vocabulary; pass `vocabulary` at test time only")
        images = self.preprocess_image(batched_inputs)
        if self.training:
            vocab = self.train_vocabulary
        else:
            vocab = self.test_vocabulary if vocabulary is None else self._checked(vocabulary)
        synonyms, owner = vocab.flatten()
        embedding = VocabularyEmbedding(self.text_cache(synonyms, self.label_template, self.device), owner, len(vocab))
        features = self.backbone(images.tensor)
        outputs = self.sem_seg_head(features, class_inputs={"vocabulary": embedding.check()})
        if self.training:
            return self.losses(outputs, batched_inputs, images)
        return self.inference(outputs, batched_inputs, images, vocab, synonyms, owner)

    def preprocess_image(self, batched_inputs):
        """uint8 RGB -> (x - PIXEL_MEAN) / PIXEL_STD ([0, 1] with ODISE's 0 / 255), zero-padded
        bottom/right to ``size_divisibility`` as ODISE pads: [B, 3, H, W]."""
        images = []
        for x in batched_inputs:
            img = x["image"]
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"expected an RGB image tensor [3, H, W], got shape {tuple(img.shape)}")
            if img.is_floating_point() and img.device.type == "cpu" and 0 < float(img.max()) <= 1:
                # DefaultPredictor passes float arrays on unchecked: a [0, 1]-scaled image would be
                # seen as almost black (odise_ext.engine.predictor.Predictor refuses it). CPU
                # input only: the check must not cost a device sync.
                log_first_n(logging.WARNING, "input image values are all in (0, 1]: pixels are read as 0..255; "
                            "scale a [0, 1] image by 255 (or use odise_ext.engine.predictor.Predictor)", n=3)
            images.append((img.to(self.device, torch.float32) - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, self.size_divisibility, pad_value=0.0)

    def prepare_targets(self, batched_inputs, images):
        h_pad, w_pad = images.tensor.shape[-2:]
        targets = []
        for x in batched_inputs:
            inst = x["instances"].to(self.device)
            masks = inst.gt_masks
            masks = masks.tensor if hasattr(masks, "tensor") else masks
            padded = masks.new_zeros((masks.shape[0], h_pad, w_pad), dtype=torch.bool)
            padded[:, : masks.shape[1], : masks.shape[2]] = masks.bool()
            targets.append({"labels": inst.gt_classes, "masks": padded})
        return targets

    def losses(self, outputs, batched_inputs, images):
        losses = self.criterion(outputs, self.prepare_targets(batched_inputs, images))
        for k in list(losses):
            if k in self.criterion.weight_dict:
                losses[k] = losses[k] * self.criterion.weight_dict[k]
            else:
                losses.pop(k)
        if self.caption_loss_weight > 0:
            losses.update(self.caption_losses(outputs, batched_inputs))
        return losses

    def caption_losses(self, outputs, batched_inputs):
        """Grounding loss on every decoder output (ODISE's caption model)."""
        if any("caption_phrases" not in x for x in batched_inputs):
            raise ValueError("MODEL.ODISE.CAPTION.ENABLED needs 'caption_phrases' in every input (a *_caption dataset)")
        phrases = [p for x in batched_inputs for p in x["caption_phrases"]]
        n = len(batched_inputs[0]["caption_phrases"])
        if len(phrases) != n * len(batched_inputs):
            raise ValueError("every image must carry the same number of caption phrases")
        text = self.text_cache(phrases, self.clip_template, self.device)
        class_head = self.class_head
        phrase_embed = class_head.project_text(text).view(len(batched_inputs), n, -1)
        scale = class_head.logit_scale()
        out = {}
        for i, pred in enumerate([*outputs.get("aux_outputs", []), outputs]):
            embed = self.class_head.embed(pred["query_features"], outputs["mask_features"], pred["pred_masks"])
            out[f"loss_caption_{i}"] = self.caption_loss_weight * caption_grounding_loss(embed, phrase_embed, scale)
        return out

    # ---------------------------------------------------------------- inference
    def clip_logits(self, image, mask_logits, clip_text, owner, num_classes):
        """Per-mask CLIP classification of one image: [3,h,w] in [0,1], [Q,h',w'] -> [Q, K]."""
        embed = mask_clip_embed(
            self.clip.visual, image[None], mask_logits[None], CLIP_MEAN, CLIP_STD, sdpa=self.mask_clip_sdpa
        )[0]
        sim = F.normalize(embed, dim=-1) @ F.normalize(clip_text, dim=-1).t()
        scale = self.clip.logit_scale()
        return synonym_max(scale * sim, owner, num_classes)

    def inference(self, outputs, batched_inputs, images, vocab, synonyms, owner):
        mask_cls = outputs["pred_logits"]
        mask_pred = outputs["pred_masks"]
        k = len(vocab)
        if self.clip_ensemble:
            seen = vocab.seen_mask(self.train_vocabulary)
            clip_text = self.text_cache(synonyms, self.clip_template, self.device)
            fused = []
            for i, (h, w) in enumerate(images.image_sizes):
                masks = mask_pred[i]
                if not self.reference_preprocessing:
                    # Align masks with the unpadded image the CLIP branch sees (the reference
                    # passes the padded-canvas masks; see docs/exactness.md).
                    sh, sw = masks.shape[-2:]
                    ph, pw = images.tensor.shape[-2:]
                    masks = masks[:, : max(1, round(h * sh / ph)), : max(1, round(w * sw / pw))]
                logits = self.clip_logits(images.tensor[i, :, :h, :w], masks, clip_text, owner, k)
                fused.append(geometric_ensemble(mask_cls[i], logits, seen, self.alpha, self.beta))
            mask_cls = torch.stack(fused)
        padded = images.tensor.shape[-2:]
        results = []
        for i, (cls_i, x, size) in enumerate(zip(mask_cls, batched_inputs, images.image_sizes)):
            height, width = x.get("height", size[0]), x.get("width", size[1])
            # The padded canvas is the model's input size; the original (height, width) is read in
            # row chunks (detectron2's sem_seg_postprocess, without its [Q, height, width] tensor).
            pred_i = F.interpolate(mask_pred[i : i + 1], size=padded, mode="bilinear", align_corners=False)[0]
            pred_i = FullResolutionMasks(
                pred_i[:, : size[0], : size[1]], (height, width), chunk_pixels=self.postprocess_chunk_pixels
            )
            r = {}
            if self.semantic_on:
                r["sem_seg"] = semantic_inference(cls_i, pred_i)
            if self.panoptic_on:
                r["panoptic_seg"] = panoptic_inference(
                    cls_i, pred_i, num_classes=k, thing_ids=set(vocab.thing_ids),
                    object_mask_threshold=self.object_mask_threshold, overlap_threshold=self.overlap_threshold,
                )
            if self.instance_on:
                r["instances"] = instance_inference(
                    cls_i, pred_i, test_topk_per_image=self.test_topk_per_image,
                    thing_ids=set(vocab.thing_ids), panoptic_on=self.panoptic_on,
                )
            results.append(r)
        return results
