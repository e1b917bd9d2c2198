"""Config keys of ODISE: the open-vocabulary heads (``MODEL.ODISE``) and its frozen CLIP (``MODEL.CLIP``)."""
from detectron2.config import CfgNode as CN

from ..config import register_config

__all__ = ["add_odise_head_config", "add_clip_config"]


@register_config
def add_odise_head_config(cfg):
    """ODISE's open-vocabulary classification keys (namespace ``MODEL.ODISE``)."""
    cfg.MODEL.ODISE = CN()
    # Width of the mask embeddings compared with projected CLIP text embeddings.
    cfg.MODEL.ODISE.EMBED_DIM = 256
    # Prompt template of the label head's class text embeddings (ODISE label model: bare names).
    cfg.MODEL.ODISE.LABEL_TEMPLATE = "{}"
    # Prompt template of the CLIP branch and of caption phrases.
    cfg.MODEL.ODISE.CLIP_TEMPLATE = "a photo of a {}."
    # Fuse the CLIP branch (per-mask CLIP classification) into the class scores at test time.
    cfg.MODEL.ODISE.CLIP_ENSEMBLE = True
    # CLIP weight in the geometric ensemble for classes seen in training (alpha) and unseen (beta).
    cfg.MODEL.ODISE.ALPHA = 0.3
    cfg.MODEL.ODISE.BETA = 0.7
    # Dataset whose classes count as "seen" ("" = DATASETS.TRAIN[0]).
    cfg.MODEL.ODISE.TRAIN_VOCABULARY_DATASET = ""
    # Test vocabulary as "cat;dog,puppy;sky" ("" = the test dataset's own classes).
    cfg.MODEL.ODISE.TEST_VOCABULARY = ""
    # Reference-exact preprocessing (as ODISE: windows, bicubic without antialias, pad to 64);
    # False aligns the masks with the image before the CLIP branch (docs/exactness.md).
    cfg.MODEL.ODISE.REFERENCE_PREPROCESSING = True

    cfg.MODEL.ODISE.CAPTION = CN()
    # Train with the caption grounding loss (needs a *_caption dataset).
    cfg.MODEL.ODISE.CAPTION.ENABLED = False
    # Noun phrases sampled (with replacement) from one caption per image.
    cfg.MODEL.ODISE.CAPTION.NUM_PHRASES = 8
    # Weight of the grounding loss on every decoder output.
    cfg.MODEL.ODISE.CAPTION.LOSS_WEIGHT = 1.0


@register_config
def add_clip_config(cfg):
    """The frozen open_clip CLIP of ODISE's implicit captioner and CLIP classifier (``MODEL.CLIP``)."""
    cfg.MODEL.CLIP = CN()
    c = cfg.MODEL.CLIP
    # open_clip model config name (e.g. "ViT-L-14-336"), or "custom" for the CUSTOM architecture.
    c.NAME = "ViT-L-14-336"
    # Use QuickGELU (required by OpenAI-trained weights).
    c.QUICK_GELU = True
    # Local open_clip checkpoint (state dict .bin/.pt/.pth/.safetensors, or OpenAI's TorchScript
    # file), or "random" for random init. Empty is an error.
    c.WEIGHTS = ""
    # Seed of the random initialisation used when WEIGHTS == "random".
    c.RANDOM_INIT_SEED = 0
    # dtype of the frozen CLIP model.
    c.DTYPE = "float32"
    # Architecture used when NAME == "custom" (tiny test models).
    c.CUSTOM = CN()
    # Joint embedding width.
    c.CUSTOM.EMBED_DIM = 32
    # Input image size of the vision tower.
    c.CUSTOM.IMAGE_SIZE = 32
    # ViT patch size.
    c.CUSTOM.PATCH_SIZE = 8
    # ViT width.
    c.CUSTOM.VISION_WIDTH = 32
    # ViT layers.
    c.CUSTOM.VISION_LAYERS = 2
    # ViT width per attention head.
    c.CUSTOM.VISION_HEAD_WIDTH = 16
    # Text context length.
    c.CUSTOM.CONTEXT_LENGTH = 77
    # Text vocabulary size.
    c.CUSTOM.VOCAB_SIZE = 49408
    # Text transformer width.
    c.CUSTOM.TEXT_WIDTH = 32
    # Text transformer heads.
    c.CUSTOM.TEXT_HEADS = 2
    # Text transformer layers.
    c.CUSTOM.TEXT_LAYERS = 2
