"""PNGDiffusion: Panoptic Narrative Grounding with a frozen, dynamically prompted SD UNet.

Pipeline::

    image ──VAE──UNet(t=1)──────────── taps 1/32, 1/16, 1/8 ─┐          VAE decoder 1/4 ─┐
               ▲  ▲  ▲  cross-attn maps ─► diffusion mask head (CE)   │                 │
    caption ─CLIP text─► phrases ─EIPA adapters─► prompts ──► adapter heads (mask-cls)  │
                                       └── adapter phrases ──────────► MLMA ─► mask features
                                                                         └─► phrase queries ─► decoder head

Switches: ``MODEL.PNG.EIPA.ENABLED`` (off = static prompting), ``MODEL.PNG.MLMA.ENABLED`` and
``MODEL.PNG.DECODER.ENABLED``. With everything off this is the static-prompting baseline whose
output is the diffusion mask head. Inference returns the most refined head that is on:
decoder, else the last adapter, else the diffusion head.

Inputs (``PNGDatasetMapper``): ``image`` uint8 [3, S, S], ``caption_tokens`` [T],
``phrase_token_spans`` [P, 2], ``height``/``width``; in training ``gt_masks`` [P, S, S] and
``phrase_classes`` [P]. Output per narrative: ``{"png_masks": [P, height, width]}``
probabilities in [0, 1], one per phrase in input order.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from torch import nn

from ..diffusion.backbone import DiffusionBackbone, build_diffusion_backbone
from ..engine.model_hooks import EvaluatedModel
from ..mask2former.transformer_decoder.class_head import LinearClassHead
from ..mask2former.transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder
from ..utils.precision import float32_loss
from .diffusion_mask_head import DiffusionMaskHead, phrase_cross_entropy
from .dynamic_prompt import DynamicPhrasePrompt, PhrasePromptState
from .losses import build_phrase_criterion, fixed_indices, phrase_targets, weighted_losses
from .mlma import MultiLevelMutualAggregation

__all__ = ["PNGDiffusion"]

_REQUIRED_INPUTS = ("image", "caption_tokens", "phrase_token_spans")
_TRAIN_INPUTS = ("gt_masks", "phrase_classes")


def _check_backbone(backbone: DiffusionBackbone):
    if backbone.windowed:
        raise TypeError(
            f"PNGDiffusion runs whole images through MODEL.BACKBONE.NAME 'DiffusionBackbone', got {type(backbone).__name__}"
        )


@META_ARCH_REGISTRY.register()
class PNGDiffusion(nn.Module, EvaluatedModel):
    """Diffusion-based PNG with EIPA dynamic prompting and MLMA (see the module docstring)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: DiffusionBackbone,
        diffusion_head: DiffusionMaskHead,
        mlma: Optional[MultiLevelMutualAggregation],
        decoder: Optional[MultiScaleMaskedTransformerDecoder],
        adapter_criterion: nn.Module,
        decoder_criterion: Optional[nn.Module],
        image_features: Sequence[str],
        mask_in_feature: str,
        phrase_blocks: Sequence[str],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        diffusion_loss_weight: float,
        adapter_loss_weight: float,
        decoder_loss_weight: float,
    ):
        """
        Args:
            backbone: ``DiffusionBackbone`` whose prompt module is a :class:`DynamicPhrasePrompt`
                (it returns the UNet's cross-attention maps with the features).
            diffusion_head: combines the attention maps into per-phrase distributions.
            mlma, decoder: the decoder head's aggregation and transformer decoder (None = off;
                mlma is needed iff decoder is given).
            adapter_criterion / decoder_criterion: mask-classification criteria.
            image_features: backbone features of MLMA's levels (coarsest first).
            mask_in_feature: backbone feature fused into the mask features (1/4).
            phrase_blocks: UNet blocks whose adapter phrases pair with ``image_features``
                (ignored under static prompting: every level gets the static phrases).
            pixel_mean, pixel_std: input normalisation (the backbone wants RGB in [0, 1]).
            *_loss_weight: weights of the three heads' losses.
        """
        super().__init__()
        _check_backbone(backbone)
        prompt = backbone.prompt
        if (mlma is None) != (decoder is None):
            raise ValueError("MLMA and the decoder are built together (MLMA provides the decoder's inputs)")
        missing = [b for b in phrase_blocks if prompt.adapter_blocks and b not in prompt.adapter_blocks]
        if missing:
            raise ValueError(f"MODEL.PNG.MLMA.PHRASE_BLOCKS {missing} have no adapter (MODEL.PNG.EIPA.BLOCKS)")
        self.backbone = backbone
        self.diffusion_head = diffusion_head
        self.mlma = mlma
        self.decoder = decoder
        self.adapter_criterion = adapter_criterion
        self.decoder_criterion = decoder_criterion
        self.image_features = list(image_features)
        self.mask_in_feature = mask_in_feature
        self.phrase_blocks = list(phrase_blocks)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.diffusion_loss_weight = diffusion_loss_weight
        self.adapter_loss_weight = adapter_loss_weight
        self.decoder_loss_weight = decoder_loss_weight

    @classmethod
    def from_config(cls, cfg):
        p = cfg.MODEL.PNG
        if cfg.MODEL.DIFFUSION.PROMPT.NAME != "DynamicPhrasePrompt":
            raise TypeError(
                f"PNGDiffusion needs MODEL.DIFFUSION.PROMPT.NAME 'DynamicPhrasePrompt', got {cfg.MODEL.DIFFUSION.PROMPT.NAME!r}"
            )
        backbone = build_diffusion_backbone(cfg)
        _check_backbone(backbone)
        shapes = backbone.output_shape()
        needed = list(p.MLMA.IN_FEATURES) + [p.MLMA.MASK_IN_FEATURE]
        if p.DECODER.ENABLED:
            absent = [f for f in needed if f not in shapes]
            if absent:
                raise ValueError(f"MODEL.PNG.MLMA features {absent} are not backbone outputs {sorted(shapes)}")
            if len(p.MLMA.PHRASE_BLOCKS) != len(p.MLMA.IN_FEATURES):
                raise ValueError("MODEL.PNG.MLMA.PHRASE_BLOCKS must pair one-to-one with MLMA.IN_FEATURES")
        mlma = decoder = decoder_criterion = None
        if p.DECODER.ENABLED:
            text_dim = backbone.prompt.token_dim  # the phrase features' width
            phrase_dim = p.EIPA.DIM if p.EIPA.ENABLED else text_dim
            mlma = MultiLevelMutualAggregation(
                image_channels=[shapes[f].channels for f in p.MLMA.IN_FEATURES],
                phrase_channels=[phrase_dim] * len(p.MLMA.IN_FEATURES),
                mask_in_channels=shapes[p.MLMA.MASK_IN_FEATURE].channels,
                dim=p.HIDDEN_DIM,
                mask_dim=p.DECODER.MASK_DIM,
                num_layers=p.MLMA.NUM_LAYERS if p.MLMA.ENABLED else 0,
                num_heads=p.MLMA.NHEADS,
                num_points=p.MLMA.NUM_POINTS,
                dim_feedforward=p.MLMA.DIM_FEEDFORWARD,
            )
            decoder = MultiScaleMaskedTransformerDecoder(
                in_channels=p.HIDDEN_DIM,
                mask_classification=True,
                class_head=LinearClassHead(hidden_dim=p.HIDDEN_DIM, num_classes=p.NUM_CLASSES),
                hidden_dim=p.HIDDEN_DIM,
                num_queries=0,  # one query per phrase, passed in
                nheads=p.DECODER.NHEADS,
                dim_feedforward=p.DECODER.DIM_FEEDFORWARD,
                dec_layers=p.DECODER.NUM_LAYERS,
                pre_norm=False,
                mask_dim=p.DECODER.MASK_DIM,
                enforce_input_project=False,
                num_feature_levels=len(p.MLMA.IN_FEATURES),
            )
            decoder_criterion = build_phrase_criterion(p.LOSS, p.NUM_CLASSES, p.DECODER.NUM_LAYERS)
        return {
            "backbone": backbone,
            "diffusion_head": DiffusionMaskHead(backbone.attention_layer_names),
            "mlma": mlma,
            "decoder": decoder,
            "adapter_criterion": build_phrase_criterion(p.LOSS, p.NUM_CLASSES, 0),
            "decoder_criterion": decoder_criterion,
            "image_features": p.MLMA.IN_FEATURES,
            "mask_in_feature": p.MLMA.MASK_IN_FEATURE,
            # Adapter phrases feed MLMA only; without the decoder they need not be checked.
            "phrase_blocks": p.MLMA.PHRASE_BLOCKS if p.EIPA.ENABLED and p.DECODER.ENABLED else [],
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "diffusion_loss_weight": p.DIFFUSION_HEAD.LOSS_WEIGHT,
            "adapter_loss_weight": p.EIPA.LOSS_WEIGHT,
            "decoder_loss_weight": p.DECODER.LOSS_WEIGHT,
        }

    @property
    def prompt(self) -> DynamicPhrasePrompt:
        """The backbone's prompt module (a property, not a second registration, so its parameters
        appear once in ``state_dict`` and ``named_parameters``)."""
        return self.backbone.prompt

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, batched_inputs: List[dict]):
        """Training: dict of weighted losses. Inference: ``[{"png_masks": [P, h, w]}]``."""
        self._check_inputs(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        predictions = self.predict(images.tensor, batched_inputs)
        if self.training:
            return self.losses(predictions, batched_inputs, tuple(images.tensor.shape[-2:]))
        return self.inference(predictions, batched_inputs, images)

    def preprocess_image(self, batched_inputs: Sequence[dict]) -> ImageList:
        """Normalised images, zero-padded to the backbone's size divisibility: [B, 3, H, W]."""
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def predict(self, images: torch.Tensor, batched_inputs: Sequence[dict]) -> Dict[str, object]:
        """Run every enabled head.

        Args:
            images: [B, 3, H, W] normalised, padded.
        Returns:
            ``valid`` [B, P] bool; ``diffusion`` [B, P, H/8, W/8] distribution over phrases;
            ``adapters``: list of :class:`AdapterOutput`; ``decoder``: Mask2Former-style dict
            (``pred_masks`` [B, P, H/4, W/4] logits, ``pred_logits``, ``aux_outputs``) or None.
        """
        prompt_inputs = {
            "caption_tokens": [x["caption_tokens"] for x in batched_inputs],
            "phrase_token_spans": [x["phrase_token_spans"] for x in batched_inputs],
            "foreground": self.diffusion_head.foreground,
        }
        features = self.backbone(images, prompt_inputs=prompt_inputs)
        state: PhrasePromptState = features.prompt.state
        decoder_out = None
        if self.decoder is not None:
            decoder_out = self._decode(features, state)
        return {
            "valid": state.valid,
            "diffusion": self.diffusion_head(features.attention, state.valid),
            "adapters": state.adapters,
            "decoder": decoder_out,
        }

    def _decode(self, features: Dict[str, torch.Tensor], state: PhrasePromptState) -> Dict[str, object]:
        if self.phrase_blocks:
            by_block = {a.block: a for a in state.adapters}
            absent = [b for b in self.phrase_blocks if b not in by_block]
            if absent:
                raise RuntimeError(
                    f"the adapters of {absent} did not run: the UNet stopped before them (its last "
                    f"feature tap comes earlier); tap a later UNet layer"
                )
            phrases = [by_block[b].phrases for b in self.phrase_blocks]
        else:  # static prompting: every level aggregates the phrase features themselves
            phrases = [state.phrases] * len(self.image_features)
        padding = ~state.valid
        out = self.mlma(
            [features[f] for f in self.image_features], phrases, padding, features[self.mask_in_feature]
        )
        return self.decoder(
            out["levels"], out["mask_features"], queries=out["phrases"][-1], query_padding_mask=padding
        )

    # ---- training --------------------------------------------------------------------------
    @float32_loss
    def losses(self, predictions, batched_inputs, canvas) -> Dict[str, torch.Tensor]:
        """Diffusion-head CE + each adapter's and the decoder's mask-classification losses."""
        targets = phrase_targets(batched_inputs, canvas, self.device)
        valid = predictions["valid"]
        gt = torch.zeros(valid.shape + canvas, device=self.device)
        for b, t in enumerate(targets):
            gt[b, : len(t["masks"])] = t["masks"]
        losses = {"loss_diffusion_ce": phrase_cross_entropy(predictions["diffusion"], gt, valid) * self.diffusion_loss_weight}
        indices = fixed_indices([len(t["masks"]) for t in targets])
        for i, adapter in enumerate(predictions["adapters"]):
            out = {"pred_masks": adapter.mask_logits, "pred_logits": adapter.class_logits}
            raw = self.adapter_criterion(out, targets, indices)
            losses.update(weighted_losses(raw, self.adapter_criterion.weight_dict, f"adapter{i}", self.adapter_loss_weight))
        if predictions["decoder"] is not None:
            raw = self.decoder_criterion(predictions["decoder"], targets, indices)
            losses.update(weighted_losses(raw, self.decoder_criterion.weight_dict, "decoder", self.decoder_loss_weight))
        return losses

    # ---- inference -------------------------------------------------------------------------
    def output_masks(self, predictions) -> torch.Tensor:
        """[B, P, h, w] probabilities of the most refined enabled head."""
        if predictions["decoder"] is not None:
            return predictions["decoder"]["pred_masks"].sigmoid()
        if predictions["adapters"]:
            return predictions["adapters"][-1].mask_logits.sigmoid()
        return predictions["diffusion"]

    def inference(self, predictions, batched_inputs, images: ImageList) -> List[Dict[str, torch.Tensor]]:
        masks = self.output_masks(predictions)
        canvas = tuple(images.tensor.shape[-2:])
        results = []
        for b, (x, size) in enumerate(zip(batched_inputs, images.image_sizes)):
            num = len(x["phrase_token_spans"])
            probs = F.interpolate(masks[b : b + 1, :num].float(), size=canvas, mode="bilinear", align_corners=False)[0]
            height, width = x.get("height", size[0]), x.get("width", size[1])
            probs = sem_seg_postprocess(probs, size, height, width)
            results.append({"png_masks": probs.clamp(0.0, 1.0)})
        return results

    def _check_inputs(self, batched_inputs):
        required = _REQUIRED_INPUTS + (_TRAIN_INPUTS if self.training else ())
        for i, x in enumerate(batched_inputs):
            absent = [k for k in required if k not in x]
            if absent:
                raise KeyError(f"input {i} lacks {absent}; PNGDiffusion reads the outputs of PNGDatasetMapper")
            if len(x["phrase_token_spans"]) == 0:
                raise ValueError(f"input {i} (image {x.get('image_id')}) has no phrase to ground")
            if self.training:
                num = len(x["phrase_token_spans"])
                if len(x["gt_masks"]) != num or len(x["phrase_classes"]) != num:
                    raise ValueError(
                        f"input {i} (image {x.get('image_id')}): {len(x['gt_masks'])} GT masks and "
                        f"{len(x['phrase_classes'])} phrase classes for {num} phrases; need one of each per phrase"
                    )
