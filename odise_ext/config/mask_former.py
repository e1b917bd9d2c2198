"""``MODEL.MASK_FORMER.*``: Mask2Former pixel decoder, masked-attention decoder, matcher, losses
and inference. Defaults are ODISE's values.

Detectron2's own ``MODEL.SEM_SEG_HEAD`` keys are reused where they mean the same thing
(IN_FEATURES, CONVS_DIM, NORM, COMMON_STRIDE, NUM_CLASSES, IGNORE_VALUE); their defaults are
detectron2's (e.g. CONVS_DIM 128), so an ODISE yaml sets ``SEM_SEG_HEAD.CONVS_DIM: 256``.
"""

from detectron2.config import CfgNode as CN


def add_mask_former_config(cfg):
    """Add the ``MODEL.MASK_FORMER`` node to ``cfg`` in place."""
    cfg.MODEL.MASK_FORMER = CN()
    mf = cfg.MODEL.MASK_FORMER

    # --- transformer decoder ---
    # name in TRANSFORMER_DECODER_REGISTRY
    mf.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"
    # name in CLASS_HEAD_REGISTRY of the per-query classifier (default: Linear(HIDDEN_DIM, K+1))
    mf.CLASS_HEAD_NAME = "LinearClassHead"
    # number of masked-attention layers; predictions = layers + 1 (one from the learnable queries)
    mf.NUM_DECODER_LAYERS = 9
    # number of learnable queries (0: queries must be passed to the decoder's forward)
    mf.NUM_OBJECT_QUERIES = 100
    # query / attention width of the decoder
    mf.HIDDEN_DIM = 256
    # attention heads of the decoder
    mf.NHEADS = 8
    # hidden width of the decoder FFN
    mf.DIM_FEEDFORWARD = 2048
    # dropout in the decoder's attention and FFN layers
    mf.DROPOUT = 0.0
    # pre-norm (True) or post-norm (False) decoder layers
    mf.PRE_NORM = False
    # project pixel-decoder features with a 1x1 conv even when widths already match
    mf.ENFORCE_INPUT_PROJ = False
    # channels of the per-pixel mask embedding (mask features and query mask embeddings)
    mf.MASK_DIM = 256

    # --- losses and matching (matcher costs use the same weights) ---
    # loss terms by name in MASK_FORMER_LOSS_REGISTRY (ClassLoss: CE; MaskLoss: BCE + dice)
    mf.LOSSES = ["ClassLoss", "MaskLoss"]
    # supervise every intermediate prediction with the same losses (suffix "_{i}")
    mf.DEEP_SUPERVISION = True
    # CE weight of the "no object" class
    mf.NO_OBJECT_WEIGHT = 0.1
    # weight of the classification loss / matching cost
    mf.CLASS_WEIGHT = 2.0
    # weight of the sigmoid BCE mask loss / matching cost
    mf.MASK_WEIGHT = 5.0
    # weight of the dice loss / matching cost
    mf.DICE_WEIGHT = 5.0
    # points sampled per mask for losses and matching (0: every pixel of the prediction)
    mf.TRAIN_NUM_POINTS = 12544
    # candidate points drawn per loss point before importance selection
    mf.OVERSAMPLE_RATIO = 3.0
    # fraction of loss points chosen among the most uncertain candidates
    mf.IMPORTANCE_SAMPLE_RATIO = 0.75

    # --- pixel decoder: multi-scale deformable-attention encoder + FPN to COMMON_STRIDE ---
    mf.PIXEL_DECODER = CN()
    # name in PIXEL_DECODER_REGISTRY
    mf.PIXEL_DECODER.NAME = "MSDeformAttnPixelDecoder"
    # backbone features refined by the deformable encoder (each is one decoder level)
    mf.PIXEL_DECODER.TRANSFORMER_IN_FEATURES = ["res3", "res4", "res5"]
    # deformable encoder layers
    mf.PIXEL_DECODER.NUM_ENCODER_LAYERS = 6
    # deformable attention heads
    mf.PIXEL_DECODER.NHEADS = 8
    # sampling points per head and level
    mf.PIXEL_DECODER.NUM_POINTS = 4
    # hidden width of the encoder FFN
    mf.PIXEL_DECODER.DIM_FEEDFORWARD = 1024
    # dropout in the encoder layers
    mf.PIXEL_DECODER.DROPOUT = 0.0
    # deformable attention kernel: "auto" (compiled CUDA op when present), "pytorch" or "cuda"
    mf.PIXEL_DECODER.DEFORM_ATTN_IMPL = "auto"

    # --- inference (the padding is the backbone's size_divisibility) ---
    mf.TEST = CN()
    # produce semantic segmentation
    mf.TEST.SEMANTIC_ON = True
    # produce instance segmentation
    mf.TEST.INSTANCE_ON = True
    # produce panoptic segmentation
    mf.TEST.PANOPTIC_ON = True
    # panoptic: drop queries whose top (non-void) class score is not above this
    mf.TEST.OBJECT_MASK_THRESHOLD = 0.0
    # panoptic: drop segments keeping less than this fraction of their own mask after overlap
    mf.TEST.OVERLAP_THRESHOLD = 0.8
    # output pixels per chunk of full-resolution post-processing: the [Q, H, W] mask logits at the
    # original image size are never held whole, only chunks of rows of at most this many pixels
    # (x Q); the default fits 2048 x 1024 images in one chunk. Results do not depend on it.
    mf.TEST.POSTPROCESS_CHUNK_PIXELS = 2048 * 1024
    return cfg
