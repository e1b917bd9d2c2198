from detectron2.config import CfgNode as CN

from ..config import register_config


@register_config
def add_png_config(cfg):
    """Panoptic Narrative Grounding keys (namespaces ``DATA.PNG`` and ``MODEL.PNG``)."""
    # --- PNG data and evaluation (odise_ext.png.dataset_mapper, odise_ext.png.evaluation)
    cfg.DATA.PNG = CN()
    # Images and GT phrase masks are resized to IMAGE_SIZE x IMAGE_SIZE (SD UNet: a multiple of 64).
    cfg.DATA.PNG.IMAGE_SIZE = 512
    # Training only: keep at most this many grounded phrases per narrative (the first ones); 0 = all.
    cfg.DATA.PNG.MAX_PHRASES_TRAIN = 0

    cfg.MODEL.PNG = CN()
    # How PNGEvaluator compares masks: "official" = BCV-Uniandes/PNG's protocol (GT and prediction
    # each resized bilinearly to 256x256 and back to the image size; comparable with published AR);
    # "exact" = the GT untouched at the image's original resolution, the prediction resized to it.
    cfg.MODEL.PNG.EVAL_PROTOCOL = "official"
    # --- PNG model keys (added by the model component) go below.
    m = cfg.MODEL.PNG
    # Number of categories of the phrase class labels (category of each phrase's last segment;
    # COCO panoptic: 133). The mask-classification heads predict NUM_CLASSES + 1 logits.
    m.NUM_CLASSES = 133
    # Length of the UNet prompt: the phrases, then zero vectors. Fixed (not the batch's phrase
    # count) so that an image's result never depends on the other narratives of its batch.
    m.CONTEXT_LENGTH = 77
    # Width of MLMA and of the phrase-query transformer decoder.
    m.HIDDEN_DIM = 256

    # --- diffusion mask head: UNet cross-attention maps softmaxed over phrases ---
    m.DIFFUSION_HEAD = CN()
    # Weight of its per-pixel cross-entropy against the GT phrase masks.
    m.DIFFUSION_HEAD.LOSS_WEIGHT = 1.0

    # --- EIPA: phrase adapters beside UNet blocks (dynamic prompting) ---
    m.EIPA = CN()
    # False = static prompting: every UNet block sees the phrase features themselves.
    m.EIPA.ENABLED = True
    # UNet blocks (with cross-attention) that get an adapter; each adapter reads the block's input
    # image features and produces that block's prompt (later blocks inherit it).
    m.EIPA.BLOCKS = ["down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.1", "up_blocks.2", "up_blocks.3"]
    # Reduced width of the adapters.
    m.EIPA.DIM = 256
    # Attention heads of the adapters.
    m.EIPA.NHEADS = 8
    # Hidden width of the adapters' FFN.
    m.EIPA.DIM_FEEDFORWARD = 1024
    # Initial value of the per-channel gate on each adapter's prompt update (0 = start from
    # static prompting; non-zero lets the adapters steer the UNet from the first step).
    m.EIPA.GATE_INIT = 0.1
    # Restrict each phrase's cross-attention to its foreground in the diffusion mask head so far.
    m.EIPA.MASKED_ATTENTION = True
    # Weight of the adapter mask heads' mask-classification losses (each adapter separately).
    m.EIPA.LOSS_WEIGHT = 1.0

    # --- MLMA: multi-level mutual aggregation of image and phrase features ---
    m.MLMA = CN()
    # False = the decoder reads the projected UNet features and phrases without aggregation.
    m.MLMA.ENABLED = True
    # Backbone features of the image levels, coarsest first (1/32, 1/16, 1/8).
    m.MLMA.IN_FEATURES = ["res5", "res4", "res3"]
    # UNet blocks whose adapter phrases pair with IN_FEATURES (same order).
    m.MLMA.PHRASE_BLOCKS = ["up_blocks.1", "up_blocks.2", "up_blocks.3"]
    # Backbone feature (VAE decoder, 1/4) fused with the finest MLMA level into the mask features.
    m.MLMA.MASK_IN_FEATURE = "res2"
    # Number of MLMA layers (bidirectional attention + deformable attention + phrase self-attention).
    m.MLMA.NUM_LAYERS = 3
    # Attention heads (bidirectional, deformable and phrase self-attention).
    m.MLMA.NHEADS = 8
    # Deformable sampling points per head and level.
    m.MLMA.NUM_POINTS = 4
    # Hidden width of the MLMA FFNs.
    m.MLMA.DIM_FEEDFORWARD = 1024

    # --- decoder mask head: one query per phrase, Mask2Former masked-attention decoder ---
    m.DECODER = CN()
    # False = no decoder (the output comes from the last adapter head, or the diffusion head).
    m.DECODER.ENABLED = True
    # Masked-attention layers (layers + 1 supervised predictions).
    m.DECODER.NUM_LAYERS = 9
    # Attention heads.
    m.DECODER.NHEADS = 8
    # FFN width.
    m.DECODER.DIM_FEEDFORWARD = 2048
    # Channels of the mask features and of the query mask embeddings.
    m.DECODER.MASK_DIM = 256
    # Weight of the decoder head's mask-classification loss (every prediction).
    m.DECODER.LOSS_WEIGHT = 1.0

    # --- mask-classification losses of the adapter and decoder heads (fixed phrase<->query
    # assignment, so no matching) ---
    m.LOSS = CN()
    # Weight of the phrase-category cross-entropy.
    m.LOSS.CLASS_WEIGHT = 2.0
    # Weight of the sigmoid BCE on sampled points.
    m.LOSS.MASK_WEIGHT = 5.0
    # Weight of the dice loss on sampled points.
    m.LOSS.DICE_WEIGHT = 5.0
    # Points sampled per mask (0 = every pixel of the prediction).
    m.LOSS.NUM_POINTS = 12544
    # Candidate points per sampled point for importance sampling.
    m.LOSS.OVERSAMPLE_RATIO = 3.0
    # Fraction of sampled points chosen among the most uncertain candidates.
    m.LOSS.IMPORTANCE_SAMPLE_RATIO = 0.75
