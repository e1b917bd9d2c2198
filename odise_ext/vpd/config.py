"""Config keys of the VPD / Meta-Prompts task heads, losses and evaluators (``MODEL.VPD.*``).

Semantic segmentation heads are chosen with detectron2's ``MODEL.SEM_SEG_HEAD.NAME``
("FPNHead" for VPD's Semantic-FPN, "UPerHead" for Meta-Prompts) and share its generic keys
(IN_FEATURES, NUM_CLASSES, IGNORE_VALUE, NORM, LOSS_WEIGHT); only their own keys live here.
Feature names default to the detectron2 convention res3/res4/res5/res6 = stride 8/16/32/64.
"""
from detectron2.config import CfgNode as CN

from ..config import register_config

# NYUv2's 27 scene types in the row order of VPD's stored ``class_embeddings``
# (VPD depth/nyu_class_list.json: the order its dump script globbed the training folders in).
NYU_SCENE_CLASSES = (
    "printer_room", "bathroom", "living_room", "study", "conference_room", "study_room",
    "kitchen", "home_office", "bedroom", "dinette", "playroom", "indoor_balcony", "laundry_room",
    "basement", "excercise_room", "foyer", "home_storage", "cafe", "furniture_store",
    "office_kitchen", "student_lounge", "dining_room", "reception_room", "computer_lab",
    "classroom", "office", "bookstore",
)
_COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def _add_depth(cfg):
    d = cfg.MODEL.VPD.DEPTH = CN()
    # --- head (VPD / Meta-Prompts depth decoder) ---
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY: "VPDDepthHead" (VPD; also our
    # earlier Meta-Prompts design) or "MetaPromptsDepthHead" (Meta-Prompts' public head).
    d.HEAD_NAME = "VPDDepthHead"
    # Backbone features at strides 8, 16, 32, 64, in this order.
    d.IN_FEATURES = ["res3", "res4", "res5", "res6"]
    # Output channels of the 1x1 conv fusing the four scales at stride 32 (VPD: 8 * 192).
    d.FUSE_DIM = 1536
    # GroupNorm groups after the fusing conv (must divide FUSE_DIM); the stride-8 downsampling
    # branch uses gcd(GN_GROUPS, its channels) groups (e.g. 2 for Meta-Prompts' 50 prompt maps).
    d.GN_GROUPS = 16
    # Output channels of each stride-2 deconvolution (their count = number of deconvs).
    d.DECONV_FILTERS = [32, 32, 32]
    # Kernel size of each deconvolution (2, 3 or 4); same length as DECONV_FILTERS.
    d.DECONV_KERNELS = [2, 2, 2]
    # MetaPromptsDepthHead: filters of the neck's 4 x 4 deconvolutions that bring the stride-16/32/64
    # maps to stride 8 (Meta-Prompts: 32).
    d.NECK_FILTERS = 32
    # Channels of the conv after the deconvs and of the final conv-ReLU-conv block (VPD: 192).
    d.HIDDEN_DIM = 192
    # Normalisation after the deconvs and the hidden conv ("BN", "SyncBN", "GN", "").
    d.NORM = "BN"
    # Crop the fused stride-32 map to ceil(image / 32) before decoding, i.e. drop the cells that
    # only see the padding (VPD: 16 x 16 -> 15 x 15 for a 480 window padded to 512). False decodes
    # the whole padded canvas and crops the depth map at the end (our earlier design).
    d.CROP_FUSED = False
    # Largest predictable depth in metres: output = sigmoid(x) * MAX_DEPTH (NYU 10, KITTI 80).
    d.MAX_DEPTH = 10.0
    # --- loss ---
    # Lambda of the SiLog loss (VPD: 0.5).
    d.SILOG_LAMBDA = 0.5
    # Multiplier of the SiLog loss.
    d.LOSS_WEIGHT = 1.0
    # --- evaluation ---
    # Ground truth <= this is ignored in evaluation; a NaN prediction is scored as this depth.
    d.EVAL_MIN_DEPTH = 1e-3
    # Ground truth >= this is ignored in evaluation; an inf prediction is scored as this depth.
    d.EVAL_MAX_DEPTH = 10.0
    # Evaluation crop: "" (none), "nyu" (Eigen NYU crop), "eigen" or "garg" (KITTI crops).
    d.EVAL_CROP = ""
    # Clamp predictions to [EVAL_MIN_DEPTH, EVAL_MAX_DEPTH] before the metrics (BTS protocol);
    # False = VPD / Meta-Prompts, which only replace inf / NaN.
    d.EVAL_CLAMP_PRED = False
    # The DepthEvaluator writes colour-mapped prediction | ground truth PNGs of the first this many
    # images (per process) to <evaluation output folder>/depth_vis/ (0 = none).
    d.EVAL_VIS_COUNT = 8


def _add_uper(cfg):
    u = cfg.MODEL.VPD.UPER = CN()
    # Channels of the PPM, lateral, FPN and fusion convs (Meta-Prompts: 512).
    u.CHANNELS = 512
    # Output sizes of the pyramid-pooling branches on the coarsest feature.
    u.POOL_SCALES = [1, 2, 3, 6]
    # Dropout before the classifier.
    u.DROPOUT = 0.0
    # Weight of the Lovász-softmax loss added to the main head's cross-entropy (0 disables).
    u.LOVASZ_WEIGHT = 1.0
    # Feature fed to the auxiliary FCN head ("" disables the auxiliary head).
    u.AUX_IN_FEATURE = "res5"
    # Channels of the auxiliary FCN head's convs.
    u.AUX_CHANNELS = 512
    # Number of 3x3 convs in the auxiliary FCN head.
    u.AUX_NUM_CONVS = 1
    # Whether the auxiliary head concatenates its input to the conv output before classifying.
    u.AUX_CONCAT_INPUT = True
    # Weight of the auxiliary head's cross-entropy (Meta-Prompts: 0.4).
    u.AUX_WEIGHT = 0.4


def _add_fpn_head(cfg):
    f = cfg.MODEL.VPD.FPN_HEAD = CN()
    # FPNHead (mmseg FPNHead): Dropout2d probability before the classifier (VPD: 0.1).
    f.DROPOUT = 0.1
    # FPNHead cross-entropy: False = the sum over labelled pixels / all pixels of the padded
    # batch (mmseg's avg_non_ignore=False, VPD); True = the mean over labelled pixels.
    f.LOSS_AVG_NON_IGNORE = False


def _add_refer(cfg):
    r = cfg.MODEL.VPD.REFER = CN()
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY.
    r.HEAD_NAME = "LAVTReferDecoder"
    # Backbone features at strides 8, 16, 32, 64, in this order (attention maps included).
    r.IN_FEATURES = ["res3", "res4", "res5", "res6"]
    # Channels of the decoder's fusion convs (VPD: 640).
    r.HIDDEN_DIM = 640
    # Normalisation inside the fusion blocks ("BN", "SyncBN", "GN", "").
    r.NORM = "BN"
    # Gate each fused scale channel-wise by the pooled sentence feature (ours; VPD has no gates).
    r.LANG_GATE = False
    # Width of the language token features used by the gates. 0 = the width of the backbone's
    # sentence tokens (the SD text encoder's hidden size, 768 for SD v1); a non-zero value is
    # checked against it.
    r.TEXT_DIM = 0
    # Cross-entropy weights of background / referred object (VPD: [0.9, 1.1]).
    r.CLASS_WEIGHTS = [0.9, 1.1]
    # Multiplier of the cross-entropy loss.
    r.LOSS_WEIGHT = 1.0
    # Evaluation: a probability mask counts as foreground where it exceeds this value.
    r.EVAL_THRESHOLD = 0.5
    # Evaluation: IoU of a sample whose prediction and GT are both empty. 0.0 = LAVT/VPD's test.py
    # (the published protocol); 1.0 counts such a sample as a perfect match.
    r.EMPTY_IOU = 0.0
    # Evaluation: compare masks at the network input size (MODEL.VPD.DATA.REFER_SIZE, GT resized by
    # nearest neighbour; LAVT/VPD's protocol) instead of at the image's original resolution.
    r.EVAL_AT_INPUT_SIZE = True


def _add_pose(cfg):
    p = cfg.MODEL.VPD.POSE = CN()
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY.
    p.HEAD_NAME = "TopDownHeatmapHead"
    # Backbone feature the heatmaps are decoded from.
    p.IN_FEATURE = "res5"
    # Number of keypoints (COCO: 17).
    p.NUM_KEYPOINTS = 17
    # Output channels of each stride-2 deconvolution (their count = number of deconvs).
    p.DECONV_FILTERS = [256, 256, 256]
    # Kernel size of each deconvolution (2, 3 or 4); same length as DECONV_FILTERS.
    p.DECONV_KERNELS = [4, 4, 4]
    # Kernel size of the final keypoint classifier conv (1 or 3).
    p.FINAL_KERNEL = 1
    # Normalisation after each deconvolution ("BN", "SyncBN", "GN", "").
    p.NORM = "BN"
    # Multiplier of the (target-weighted) heatmap MSE loss.
    p.LOSS_WEIGHT = 1.0
    # Keypoint index pairs swapped by a horizontal flip (COCO order).
    p.FLIP_PAIRS = _COCO_FLIP_PAIRS
    # Shift the flipped-back heatmap one pixel right before averaging (SimpleBaseline/HRNet).
    p.FLIP_SHIFT = True


# ------------------------------------------------------------------------------------------------
# Engineer H: backbone modes, prompts, Meta-Prompts refinement, task inputs and test-time options.
# ------------------------------------------------------------------------------------------------
def _add_backbone_modes(cfg):
    b = cfg.MODEL.VPD.BACKBONE = CN()
    # "frozen": the UNet is a FrozenModule (no weight gradients, not checkpointed); "tuned": the
    # UNet trains (lr factor via OPTIMIZER.LR_MULTIPLIERS on "<path>.feature_extractor.unet") and
    # its weights are saved in checkpoints. VPD / Meta-Prompts tune it (0.1 seg, 0.01 depth).
    b.UNET_MODE = "frozen"
    # Activation checkpointing of the UNet's resnets / transformer blocks while gradients flow.
    b.GRADIENT_CHECKPOINTING = True
    # Image strides of the tap levels that get the cross-attention maps concatenated as extra
    # channels (one per prompt token, averaged over heads and over every cross-attention layer
    # of that stride). VPD: [16, 32]; [] disables recording.
    b.ATTENTION_STRIDES = []
    # Backbone outputs (res<k> = stride 2^k after the optional re-arrangement upsampling).
    b.OUT_FEATURES = ["res3", "res4", "res5", "res6"]
    # Value of the bottom/right padding up to the backbone's size divisibility, in the backbone's
    # [0, 1] pixel units: 0.5 is VPD's zero padding *after* the x2-1 normalisation; 0.0 pads with
    # black (our earlier design).
    b.PAD_VALUE = 0.0
    # Depth models: -1 pads every image (or test window) to the size divisibility d (64 for SD);
    # k >= 0 instead resizes it bilinearly (no antialias) to ((h // d + k) * d, (w // d + k) * d),
    # the head still predicting at the image size (Meta-Prompts: 1 on NYUv2, 480 -> 512; 2 on
    # KITTI, 352 -> 448).
    b.RESIZE_SCALE = -1

    r = cfg.MODEL.VPD.REFINE = CN()
    # Meta-Prompts recurrent refinement: number of UNet passes; between passes the stride-8
    # output goes through the UNet's own output head (norm, act, conv_out) and is the next latent.
    r.LOOPS = 1
    # Replace the UNet time-embedding MLP output by a learnable vector per loop (Meta-Prompts).
    r.LOOP_TIME_EMBED = False

    a = cfg.MODEL.VPD.REARRANGE = CN()
    # Meta-Prompts feature re-arrangement of MODEL.BACKBONE.NAME "MetaPromptsBackbone": every
    # level -> bilinear xUPSAMPLE -> conv3x3-GN-ReLU to the prompt width -> dot product with each
    # prompt -> one channel per prompt.
    # Upsampling factor before the projection (Meta-Prompts segmentation: 2; depth: 1).
    a.UPSAMPLE = 2
    # GroupNorm groups of the projection.
    a.GN_GROUPS = 16


def _add_prompts(cfg):
    p = cfg.MODEL.VPD.PROMPT = CN()
    # Class names of the class-name prompts; [] = ``stuff_classes`` of DATASETS.TRAIN[0].
    p.CLASS_NAMES = []
    # Template of the class-name prompts (VPD: "a photo of a {}").
    p.CLASS_TEMPLATE = "a photo of a {}"
    # Hidden width of the text adapter MLP (0 = the prompt width).
    p.ADAPTER_HIDDEN_DIM = 0
    # Initial value of the adapter's learnable per-channel scale gamma (VPD: 1e-4).
    p.ADAPTER_GAMMA_INIT = 1e-4
    # ClassNamePrompt: save the class embeddings in checkpoints and use the loaded ones (VPD's
    # released segmentation model stores the embeddings it was trained with); False recomputes
    # them from CLIP at build time and never checkpoints them (our earlier design).
    p.CHECKPOINT_CLASS_EMBEDDINGS = False
    # Tokens per sentence of the sentence prompts, padded with <|endoftext|> (VPD: 77, the default
    # --token_length of its referring code).
    p.SENTENCE_LENGTH = 77
    # Scene classes of :class:`SceneClassPrompt` (VPD depth: one context token per image, the
    # adapted CLIP embedding of the image's scene class); the index in this list is the row of the
    # checkpoint's ``class_embeddings``. Default: NYUv2's 27 scene types in VPD's order.
    p.SCENE_CLASSES = list(NYU_SCENE_CLASSES)
    # How an image's scene name picks its row: "first_substring" (VPD's NYU loader: the first of
    # SCENE_CLASSES, in order, that occurs in the name, so study_room -> study and office_kitchen
    # -> kitchen, as VPD's released model was trained and tested) or "exact".
    p.SCENE_MATCH = "first_substring"
    # Number of learnable meta prompts (Meta-Prompts: 150 segmentation, 50 depth).
    p.NUM_META_PROMPTS = 150
    # Pass the meta prompts through an MLP (Linear-GELU-Linear) before use (Meta-Prompts depth).
    p.META_PROMPT_MLP = False
    # One set of meta prompts (and MLP) per refinement step, REFINE.LOOPS of them (Meta-Prompts
    # depth); False shares one set by every step (Meta-Prompts segmentation).
    p.META_PROMPTS_PER_STEP = False


def _add_task_inputs(cfg):
    t = cfg.MODEL.VPD.TEST = CN()
    # Sliding-window inference (semantic segmentation, depth): window [h, w]; [] = whole image.
    t.CROP_SIZE = []
    # Step between windows [h, w] (VPD ADE20K: 341 for 512 windows).
    t.STRIDE = []
    # Average with the prediction on the horizontally flipped input (depth, pose).
    t.FLIP = False
    # Depth: n >= 2 replaces CROP_SIZE / STRIDE by VPD / Meta-Prompts' shift-window test: n square
    # windows of the image's height at x = i * ((W - H) // (n - 1)), averaged where they overlap
    # (NYUv2: 2, KITTI: 16); trailing columns no window covers repeat the last covered one.
    t.SHIFT_WINDOWS = 0

    d = cfg.MODEL.VPD.DATA = CN()
    # Training crop [h, w] of the depth / referring mappers ([] = no crop).
    d.CROP_SIZE = []
    # Depth mapper: ground truth >= this (metres) is marked invalid (0) before training.
    d.MAX_DEPTH = 10.0
    # Depth mapper: KITTI benchmark crop (352 x 1216, bottom-centred) of image and depth.
    d.KB_CROP = False
    # Referring mapper: resize every image to this [h, w] (VPD: 512 x 512; [] keeps size).
    d.REFER_SIZE = []
    # Semantic-seg mapper: random rescale range of the crop side (mmseg ratio_range 0.5-2.0).
    d.SEM_SEG_SCALE_RANGE = [0.5, 2.0]
    # Semantic-seg mapper: the reference side that SEM_SEG_SCALE_RANGE multiplies (ADE: 512).
    d.SEM_SEG_BASE_SIZE = 512
    # Semantic-seg mapper: a training crop (INPUT.CROP) is re-drawn while one class covers more
    # than this fraction of it (mmseg cat_max_ratio 0.75).
    d.SEM_SEG_CAT_MAX_AREA = 0.75

    k = cfg.MODEL.VPD.POSE_INPUT = CN()
    # Top-down person crop [h, w] fed to the backbone (SimpleBaseline: 256 x 192).
    k.CROP_SIZE = [256, 192]
    # Boxes are expanded to the crop's aspect ratio, then scaled by this (SimpleBaseline: 1.25).
    k.BOX_SCALE = 1.25
    # Training: random box scale in [1 - s, 1 + s] and rotation in [-r, r] degrees.
    k.SCALE_JITTER = 0.25
    k.ROTATION = 30.0
    # Gaussian sigma of the target heatmaps, in heatmap pixels.
    k.SIGMA = 2.0


@register_config
def add_vpd_config(cfg):
    """Add the ``MODEL.VPD`` keys (heads, backbone modes, prompts, task inputs) to ``cfg`` in place."""
    cfg.MODEL.VPD = CN()
    _add_depth(cfg)
    _add_uper(cfg)
    _add_fpn_head(cfg)
    _add_refer(cfg)
    _add_pose(cfg)
    # engineer H
    _add_backbone_modes(cfg)
    _add_prompts(cfg)
    _add_task_inputs(cfg)
    return cfg
