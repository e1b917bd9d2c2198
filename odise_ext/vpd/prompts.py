"""Prompt modules of VPD (registered in ``PROMPT_REGISTRY``).

- :class:`ClassNamePrompt` (VPD segmentation): one pooled CLIP text embedding per class of
  "a photo of a {class}", computed once at build time, refined by the :class:`TextAdapter`.
- :class:`SentencePrompt` (VPD referring segmentation): the frozen CLIP token features of each
  image's sentence, refined by the adapter; the per-image tokens and their mask are handed back in
  ``PromptOutput.state`` for the language-aware decoder.
- :class:`SceneClassPrompt` (VPD depth): one context token per image, the adapted pooled CLIP
  embedding of the image's scene class (prompt input ``scenes``).

Every module declares ``num_tokens`` (the context length L), which fixes the channel count of the
attention-map features and of the Meta-Prompts re-arrangement, and ``token_dim`` (D).
"""
from typing import Sequence

import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog

from ..diffusion.frozen import FrozenModule, freeze, parse_dtype
from ..diffusion.prompts import PROMPT_REGISTRY, PromptModule, PromptOutput, SentenceTokens
from ..utils.input_checks import check_all
from .adapter import TextAdapter
from .text import encode_pooled_text, encode_text_tokens

__all__ = [
    "ClassNamePrompt",
    "SceneClassPrompt",
    "SentencePrompt",
    "resolve_class_names",
]


def resolve_class_names(cfg) -> list:
    """``MODEL.VPD.PROMPT.CLASS_NAMES``, or else ``stuff_classes`` of ``DATASETS.TRAIN[0]``."""
    names = list(cfg.MODEL.VPD.PROMPT.CLASS_NAMES)
    if names:
        return names
    if not cfg.DATASETS.TRAIN:
        raise ValueError("ClassNamePrompt: set MODEL.VPD.PROMPT.CLASS_NAMES or DATASETS.TRAIN")
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    names = list(meta.get("stuff_classes", None) or [])
    if not names:
        raise ValueError(
            f"ClassNamePrompt: dataset {cfg.DATASETS.TRAIN[0]!r} has no stuff_classes metadata; "
            "set MODEL.VPD.PROMPT.CLASS_NAMES"
        )
    return names


def _adapter(cfg, dim: int) -> TextAdapter:
    p = cfg.MODEL.VPD.PROMPT
    return TextAdapter(dim, p.ADAPTER_HIDDEN_DIM, p.ADAPTER_GAMMA_INIT)


@PROMPT_REGISTRY.register()
class ClassNamePrompt(PromptModule):
    """Class-name prompts: context [N, K, D] = adapter(CLIP("a photo of a {class}"))."""

    @configurable
    def __init__(self, *, class_embeddings: torch.Tensor, adapter: TextAdapter):
        """
        Args:
            class_embeddings: [K, D] pooled text embeddings of the K class prompts; kept in the
                state dict, so that a checkpoint's (VPD's released ``class_embeddings``, those it
                was trained with) replace the computed ones on loading.
            adapter: the text adapter (trainable).
        """
        super().__init__()
        if class_embeddings.dim() != 2:
            raise ValueError(f"class_embeddings must be [K, D], got {tuple(class_embeddings.shape)}")
        self.register_buffer("class_embeddings", class_embeddings.detach().float())
        self.adapter = adapter

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        template = cfg.MODEL.VPD.PROMPT.CLASS_TEMPLATE
        if "{}" not in template:
            raise ValueError(f"MODEL.VPD.PROMPT.CLASS_TEMPLATE {template!r} has no '{{}}'")
        texts = [template.format(n) for n in resolve_class_names(cfg)]
        embeddings = encode_pooled_text(text_encoder, texts)
        return {
            "class_embeddings": embeddings,
            "adapter": _adapter(cfg, embeddings.shape[1]),
        }

    @property
    def num_tokens(self) -> int:
        return self.class_embeddings.shape[0]

    @property
    def token_dim(self) -> int:
        return self.class_embeddings.shape[1]

    def forward(self, images, image_index, **inputs) -> PromptOutput:
        """[N, 3, R, R'] images -> context [N, K, D] (the same for every image)."""
        context = self.adapter(self.class_embeddings)
        return PromptOutput(context=context.unsqueeze(0).expand(images.shape[0], -1, -1))


@PROMPT_REGISTRY.register()
class SceneClassPrompt(PromptModule):
    """VPD depth's prompt: context [N, 1, D] = adapter(class_embeddings[scene of each image]).

    With a single context token, softmax attention over it is 1 and every cross-attention layer
    reduces to ``to_out(to_v(context))``.
    """

    @configurable
    def __init__(
        self,
        *,
        scene_classes: Sequence[str],
        class_embeddings: torch.Tensor,
        adapter: TextAdapter,
        scene_match: str = "first_substring",
    ):
        """
        Args:
            scene_classes: the K scene names, in the row order of ``class_embeddings``.
            class_embeddings: [K, D] pooled text embeddings of the scene prompts.
            adapter: the text adapter (trainable).
            scene_match: "exact" (a scene name must be one of ``scene_classes``) or
                "first_substring" (the first of ``scene_classes`` occurring in the name).
        """
        super().__init__()
        if class_embeddings.dim() != 2 or class_embeddings.shape[0] != len(scene_classes):
            raise ValueError(
                f"class_embeddings {tuple(class_embeddings.shape)} must be [K, D] for the "
                f"K={len(scene_classes)} scene classes"
            )
        if scene_match not in ("exact", "first_substring"):
            raise ValueError(f"MODEL.VPD.PROMPT.SCENE_MATCH must be 'exact' or 'first_substring', got {scene_match!r}")
        self.scene_classes = list(scene_classes)
        self.scene_match = scene_match
        self._index = {name: i for i, name in enumerate(self.scene_classes)}
        # Persistent: VPD's released checkpoints store the embeddings they were trained with.
        self.register_buffer("class_embeddings", class_embeddings.detach().float())
        self.adapter = adapter

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        p = cfg.MODEL.VPD.PROMPT
        if "{}" not in p.CLASS_TEMPLATE:
            raise ValueError(f"MODEL.VPD.PROMPT.CLASS_TEMPLATE {p.CLASS_TEMPLATE!r} has no '{{}}'")
        names = list(p.SCENE_CLASSES)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"MODEL.VPD.PROMPT.SCENE_CLASSES must be non-empty and unique, got {names}")
        texts = [p.CLASS_TEMPLATE.format(n.replace("_", " ")) for n in names]
        embeddings = encode_pooled_text(text_encoder, texts)
        return {
            "scene_classes": names,
            "class_embeddings": embeddings,
            "adapter": _adapter(cfg, embeddings.shape[1]),
            "scene_match": p.SCENE_MATCH,
        }

    @property
    def num_tokens(self) -> int:
        return 1

    @property
    def token_dim(self) -> int:
        return self.class_embeddings.shape[1]

    def scene_row(self, name: str) -> int:
        """Row of ``class_embeddings`` for a scene name, by ``scene_match``."""
        if self.scene_match == "first_substring":
            # VPD's NYU loader scans its class list in order and takes the first name contained in
            # "<folder>_<file>"; a class can only match through the folder, i.e. the scene name.
            row = next((i for i, c in enumerate(self.scene_classes) if c in name), None)
        else:
            row = self._index.get(name)
        if row is None:
            raise ValueError(
                f"unknown scene class {name!r} (MODEL.VPD.PROMPT.SCENE_MATCH {self.scene_match!r}); "
                f"MODEL.VPD.PROMPT.SCENE_CLASSES has {self.scene_classes}"
            )
        return row

    def scene_ids(self, scenes: Sequence, device) -> torch.Tensor:
        """Scene names (or int indices) -> [B] int64 row indices."""
        ids = []
        for s in scenes:
            if isinstance(s, str):
                ids.append(self.scene_row(s))
            elif isinstance(s, int) and 0 <= s < len(self.scene_classes):
                ids.append(s)
            else:
                raise ValueError(f"scene {s!r} is neither a scene class name nor an index < {len(self.scene_classes)}")
        return torch.tensor(ids, dtype=torch.long, device=device)

    def forward(self, images, image_index, scenes: Sequence = None, **inputs) -> PromptOutput:
        """
        Args:
            images: [N, 3, R, R'] images (or windows).
            image_index: [N] batch image of each row.
            scenes: B scene class names (or indices), one per batch image.
        Returns:
            context [N, 1, D].
        """
        if scenes is None or isinstance(scenes, str) or None in scenes:
            raise ValueError("SceneClassPrompt needs prompt input 'scenes': one scene class per image")
        ids = self.scene_ids(scenes, self.class_embeddings.device)
        context = self.adapter(self.class_embeddings[ids])
        return PromptOutput(context=context[image_index].unsqueeze(1))


@PROMPT_REGISTRY.register()
class SentencePrompt(PromptModule):
    """Sentence-token prompts: context [N, L, D] = adapter(CLIP tokens of each image's sentence)."""

    @configurable
    def __init__(self, *, text_encoder: FrozenModule, length: int, adapter: TextAdapter):
        """
        Args:
            text_encoder: frozen SD text encoder (``CLIPTextModel``).
            length: tokens per sentence L.
            adapter: the text adapter (trainable).
        """
        super().__init__()
        self.text_encoder = text_encoder
        self.length = int(length)
        self.adapter = adapter

    @classmethod
    def from_config(cls, cfg, text_encoder, unet):
        source = {"weights": cfg.MODEL.DIFFUSION.WEIGHTS, "component": "text_encoder"}
        return {
            "text_encoder": freeze(text_encoder, source, parse_dtype(cfg.MODEL.DIFFUSION.DTYPE)),
            "length": cfg.MODEL.VPD.PROMPT.SENTENCE_LENGTH,
            "adapter": _adapter(cfg, text_encoder.config.hidden_size),
        }

    @property
    def num_tokens(self) -> int:
        return self.length

    @property
    def token_dim(self) -> int:
        """Width D of the sentence tokens (the text encoder's hidden size; ``SentenceTokens``)."""
        return self.text_encoder.module.config.hidden_size

    def forward(self, images, image_index, sentences: Sequence[str] = None, **inputs) -> PromptOutput:
        """
        Args:
            images: [N, 3, R, R'] images (or windows).
            image_index: [N] batch image of each row.
            sentences: B strings, one per batch image.
        Returns:
            context [N, L, D]; state :class:`SentenceTokens` with [B, L, D] / [B, L].
        """
        if sentences is None or isinstance(sentences, str):
            raise ValueError("SentencePrompt needs prompt input 'sentences': one string per image")
        check_all(image_index < len(sentences), f"{len(sentences)} sentences for more batch images")
        tokens, mask = encode_text_tokens(self.text_encoder.module, sentences, self.length)
        tokens = self.adapter(tokens.to(images.device, torch.float32))
        return PromptOutput(
            context=tokens[image_index], state=SentenceTokens(tokens, mask.to(images.device))
        )
