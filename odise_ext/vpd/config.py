"""Config keys of VPD (``MODEL.VPD.*``): its backbone's outputs and cross-attention channels, and
its text prompts (class names, scene classes, sentences) with the text adapter. The dense heads,
test-time options and dataset inputs are task-generic (``odise_ext/dense/config.py``); the UNet
mode and refinement loop are the diffusion extractor's (``MODEL.DIFFUSION``)."""
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


def _add_backbone(cfg):
    v = cfg.MODEL.VPD
    # Image strides of the tap levels that get the cross-attention maps concatenated as extra
    # channels (one per prompt token, averaged over heads and over every cross-attention layer
    # of that stride). VPD: [16, 32]; [] disables recording.
    v.ATTENTION_STRIDES = []
    # Backbone outputs (res<k> = stride 2^k after the optional re-arrangement upsampling).
    v.OUT_FEATURES = ["res3", "res4", "res5", "res6"]


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


@register_config
def add_vpd_config(cfg):
    """Add the ``MODEL.VPD`` keys (backbone outputs, prompts) to ``cfg`` in place."""
    cfg.MODEL.VPD = CN()
    _add_backbone(cfg)
    _add_prompts(cfg)
    return cfg
