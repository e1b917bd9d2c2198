"""Config keys of the task-generic dense models: their heads (``MODEL.DEPTH_HEAD``,
``MODEL.UPER_HEAD``, ``MODEL.FPN_HEAD``, ``MODEL.REFER_HEAD``, ``MODEL.POSE_HEAD``), test-time
options (``TEST.DENSE``) and dataset inputs (``DATA.DEPTH``, ``DATA.REFER``, ``DATA.SEM_SEG``,
``DATA.POSE``).

Semantic segmentation heads are chosen with detectron2's ``MODEL.SEM_SEG_HEAD.NAME``
("FPNHead" for VPD's Semantic-FPN, "UPerHead" for Meta-Prompts) and share its generic keys
(IN_FEATURES, NUM_CLASSES, IGNORE_VALUE, NORM, LOSS_WEIGHT); only their own keys live here.
Feature names default to the detectron2 convention res3/res4/res5/res6 = stride 8/16/32/64.
"""
from detectron2.config import CfgNode as CN

from ..config import register_config

_COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def _add_depth_head(cfg):
    d = cfg.MODEL.DEPTH_HEAD = CN()
    # --- head (VPD / Meta-Prompts depth decoder) ---
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY: "VPDDepthHead" (VPD) or
    # "MetaPromptsDepthHead" (Meta-Prompts).
    d.NAME = "VPDDepthHead"
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
    # Largest predictable depth in metres: output = sigmoid(x) * MAX_DEPTH (NYU 10, KITTI 80).
    d.MAX_DEPTH = 10.0
    # -1 pads every image (or test window) to the backbone's size divisibility d (VPD); k >= 0
    # instead resizes it bilinearly (no antialias) to ((h // d + k) * d, (w // d + k) * d), the head
    # still predicting at the image size (Meta-Prompts: 1 on NYUv2, 480 -> 512; 2 on KITTI, 352 -> 448).
    d.RESIZE_SCALE = -1
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


def _add_uper_head(cfg):
    u = cfg.MODEL.UPER_HEAD = CN()
    # Channels of the PPM, lateral, FPN and fusion convs (Meta-Prompts: 512).
    u.CHANNELS = 512
    # Output sizes of the pyramid-pooling branches on the coarsest feature.
    u.POOL_SCALES = [1, 2, 3, 6]
    # Dropout before the classifier (Meta-Prompts: 0.0 on ADE20K, 0.1 on Cityscapes).
    u.DROPOUT = 0.0
    # Weight of the Lovász-softmax loss added to the main head's cross-entropy (0 disables).
    u.LOVASZ_WEIGHT = 1.0
    # Feature fed to the auxiliary FCN head ("" disables the auxiliary head; Meta-Prompts: res4).
    u.AUX_IN_FEATURE = "res4"
    # Channels of the auxiliary FCN head's convs.
    u.AUX_CHANNELS = 512
    # Number of 3x3 convs in the auxiliary FCN head.
    u.AUX_NUM_CONVS = 1
    # Weight of the auxiliary head's cross-entropy (Meta-Prompts: 0.4).
    u.AUX_WEIGHT = 0.4


def _add_fpn_head(cfg):
    f = cfg.MODEL.FPN_HEAD = CN()
    # FPNHead (mmseg FPNHead): Dropout2d probability before the classifier (VPD: 0.1).
    f.DROPOUT = 0.1


def _add_refer_head(cfg):
    r = cfg.MODEL.REFER_HEAD = CN()
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY.
    r.NAME = "LAVTReferDecoder"
    # Backbone features at strides 8, 16, 32, 64, in this order (attention maps included).
    r.IN_FEATURES = ["res3", "res4", "res5", "res6"]
    # Channels of the decoder's fusion convs (VPD: 640).
    r.HIDDEN_DIM = 640
    # Cross-entropy weights of background / referred object (VPD: [0.9, 1.1]).
    r.CLASS_WEIGHTS = [0.9, 1.1]
    # Multiplier of the cross-entropy loss.
    r.LOSS_WEIGHT = 1.0
    # Evaluation: a probability mask counts as foreground where it exceeds this value.
    r.EVAL_THRESHOLD = 0.5
    # Evaluation: IoU of a sample whose prediction and GT are both empty. 0.0 = LAVT/VPD's test.py
    # (the published protocol); 1.0 counts such a sample as a perfect match.
    r.EMPTY_IOU = 0.0
    # Evaluation: compare masks at the network input size (DATA.REFER.SIZE, GT resized by nearest
    # neighbour; LAVT/VPD's protocol) instead of at the image's original resolution.
    r.EVAL_AT_INPUT_SIZE = True


def _add_pose_head(cfg):
    p = cfg.MODEL.POSE_HEAD = CN()
    # Registered name in odise_ext.dense.heads.HEAD_REGISTRY.
    p.NAME = "TopDownHeatmapHead"
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


def _add_test(cfg):
    t = cfg.TEST.DENSE = CN()
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


def _add_data(cfg):
    d = cfg.DATA.DEPTH = CN()
    # Depth mapper: training crop [h, w] ([] = no crop).
    d.CROP_SIZE = []
    # Depth mapper: ground truth >= this (metres) is marked invalid (0) before training.
    d.MAX_DEPTH = 10.0
    # Depth mapper: KITTI benchmark crop (352 x 1216, bottom-centred) of image and depth.
    d.KB_CROP = False

    r = cfg.DATA.REFER = CN()
    # Referring mapper: resize every image to this [h, w] (VPD: 512 x 512; [] keeps the size).
    r.SIZE = []

    s = cfg.DATA.SEM_SEG = CN()
    # Semantic-seg mapper: random rescale range of the crop side (mmseg ratio_range 0.5-2.0).
    s.SCALE_RANGE = [0.5, 2.0]
    # Semantic-seg mapper: the reference side that SCALE_RANGE multiplies (ADE: 512).
    s.BASE_SIZE = 512
    # Semantic-seg mapper: a training crop (INPUT.CROP) is re-drawn while one class covers more
    # than this fraction of it (mmseg cat_max_ratio 0.75).
    s.CAT_MAX_AREA = 0.75

    k = cfg.DATA.POSE = CN()
    # Top-down person crop [h, w] fed to the backbone (SimpleBaseline: 256 x 192).
    k.CROP_SIZE = [256, 192]
    # Boxes are expanded to the crop's aspect ratio, then scaled by this (SimpleBaseline: 1.25).
    k.BOX_SCALE = 1.25
    # Training: random box scale in [1 - SCALE_JITTER, 1 + SCALE_JITTER].
    k.SCALE_JITTER = 0.25
    # Training: random rotation in [-ROTATION, ROTATION] degrees.
    k.ROTATION = 30.0
    # Gaussian sigma of the target heatmaps, in heatmap pixels.
    k.SIGMA = 2.0


@register_config
def add_dense_config(cfg):
    """Add the dense heads', test-time and dataset-input keys to ``cfg`` in place."""
    _add_depth_head(cfg)
    _add_uper_head(cfg)
    _add_fpn_head(cfg)
    _add_refer_head(cfg)
    _add_pose_head(cfg)
    _add_test(cfg)
    _add_data(cfg)
    return cfg
