from detectron2.config import CfgNode as CN


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
    # False allows the faster path described in the README.
    cfg.MODEL.ODISE.REFERENCE_PREPROCESSING = True

    cfg.MODEL.ODISE.CAPTION = CN()
    # Train with the caption grounding loss (needs a *_caption dataset).
    cfg.MODEL.ODISE.CAPTION.ENABLED = False
    # Noun phrases sampled (with replacement) from one caption per image.
    cfg.MODEL.ODISE.CAPTION.NUM_PHRASES = 8
    # Weight of the grounding loss on every decoder output.
    cfg.MODEL.ODISE.CAPTION.LOSS_WEIGHT = 1.0
