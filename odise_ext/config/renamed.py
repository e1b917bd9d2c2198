"""Config keys that were renamed or removed, and the check that names them in an old config.

Merging an old yaml (or ``KEY VALUE`` overrides) that still sets one of these keys would otherwise
fail with yacs' bare "Non-existent config key"; :func:`check_renamed_keys` fails first, with one
message naming every such key and what replaced it (or why it is gone).
"""
import os
from typing import Dict, Iterable, Iterator, List, Mapping, Sequence

import yaml

__all__ = ["RENAMED", "REMOVED", "check_renamed_keys", "check_renamed_opts", "check_renamed_yaml"]


def _moved(old_prefix: str, new_prefix: str, leaves: Iterable[str]) -> Dict[str, str]:
    return {f"{old_prefix}.{leaf}": f"{new_prefix}.{leaf}" for leaf in leaves}


# old key -> the key that replaced it (the value means the same).
RENAMED: Dict[str, str] = {
    "MODEL.VPD.DEPTH.HEAD_NAME": "MODEL.DEPTH_HEAD.NAME",
    **_moved("MODEL.VPD.DEPTH", "MODEL.DEPTH_HEAD", (
        "IN_FEATURES", "FUSE_DIM", "GN_GROUPS", "DECONV_FILTERS", "DECONV_KERNELS", "NECK_FILTERS",
        "HIDDEN_DIM", "NORM", "MAX_DEPTH", "SILOG_LAMBDA", "LOSS_WEIGHT", "EVAL_MIN_DEPTH",
        "EVAL_MAX_DEPTH", "EVAL_CROP", "EVAL_CLAMP_PRED", "EVAL_VIS_COUNT",
    )),
    "MODEL.VPD.BACKBONE.RESIZE_SCALE": "MODEL.DEPTH_HEAD.RESIZE_SCALE",
    **_moved("MODEL.VPD.UPER", "MODEL.UPER_HEAD", (
        "CHANNELS", "POOL_SCALES", "DROPOUT", "LOVASZ_WEIGHT", "AUX_IN_FEATURE", "AUX_CHANNELS",
        "AUX_NUM_CONVS", "AUX_WEIGHT",
    )),
    "MODEL.VPD.FPN_HEAD.DROPOUT": "MODEL.FPN_HEAD.DROPOUT",
    "MODEL.VPD.REFER.HEAD_NAME": "MODEL.REFER_HEAD.NAME",
    **_moved("MODEL.VPD.REFER", "MODEL.REFER_HEAD", (
        "IN_FEATURES", "HIDDEN_DIM", "CLASS_WEIGHTS", "LOSS_WEIGHT", "EVAL_THRESHOLD", "EMPTY_IOU",
        "EVAL_AT_INPUT_SIZE",
    )),
    "MODEL.VPD.POSE.HEAD_NAME": "MODEL.POSE_HEAD.NAME",
    **_moved("MODEL.VPD.POSE", "MODEL.POSE_HEAD", (
        "IN_FEATURE", "NUM_KEYPOINTS", "DECONV_FILTERS", "DECONV_KERNELS", "FINAL_KERNEL", "NORM",
        "LOSS_WEIGHT", "FLIP_PAIRS", "FLIP_SHIFT",
    )),
    **_moved("MODEL.VPD.TEST", "TEST.DENSE", ("CROP_SIZE", "STRIDE", "FLIP", "SHIFT_WINDOWS")),
    "MODEL.VPD.DATA.CROP_SIZE": "DATA.DEPTH.CROP_SIZE",
    "MODEL.VPD.DATA.MAX_DEPTH": "DATA.DEPTH.MAX_DEPTH",
    "MODEL.VPD.DATA.KB_CROP": "DATA.DEPTH.KB_CROP",
    "MODEL.VPD.DATA.REFER_SIZE": "DATA.REFER.SIZE",
    "MODEL.VPD.DATA.SEM_SEG_SCALE_RANGE": "DATA.SEM_SEG.SCALE_RANGE",
    "MODEL.VPD.DATA.SEM_SEG_BASE_SIZE": "DATA.SEM_SEG.BASE_SIZE",
    "MODEL.VPD.DATA.SEM_SEG_CAT_MAX_AREA": "DATA.SEM_SEG.CAT_MAX_AREA",
    **_moved("MODEL.VPD.POSE_INPUT", "DATA.POSE", ("CROP_SIZE", "BOX_SCALE", "SCALE_JITTER", "ROTATION", "SIGMA")),
    **_moved("MODEL.VPD.BACKBONE", "MODEL.DIFFUSION", ("UNET_MODE", "GRADIENT_CHECKPOINTING")),
    **_moved("MODEL.VPD.BACKBONE", "MODEL.VPD", ("ATTENTION_STRIDES", "OUT_FEATURES")),
    **_moved("MODEL.VPD.REFINE", "MODEL.DIFFUSION.REFINE", ("LOOPS", "LOOP_TIME_EMBED")),
    **_moved("MODEL.VPD.REARRANGE", "MODEL.META_PROMPTS.REARRANGE", ("UPSAMPLE", "GN_GROUPS")),
    "MODEL.VPD.PROMPT.NUM_META_PROMPTS": "MODEL.META_PROMPTS.NUM_PROMPTS",
    "MODEL.VPD.PROMPT.META_PROMPT_MLP": "MODEL.META_PROMPTS.MLP",
    "MODEL.MASK_FORMER.TEST.TOPK_PER_IMAGE": "TEST.DETECTIONS_PER_IMAGE",
}

# old key -> why it is gone (a variant no paper or released checkpoint uses, or a key never read).
REMOVED: Dict[str, str] = {
    "MODEL.VPD.DEPTH.CROP_FUSED": "VPD's depth head always crops its fused stride-32 map to the image",
    "MODEL.VPD.BACKBONE.PAD_VALUE": (
        "dense models always pad with 0 after VPD's x2-1 normalisation (0.5 in the backbone's [0, 1] units)"
    ),
    "MODEL.VPD.PROMPT.CHECKPOINT_CLASS_EMBEDDINGS": (
        "ClassNamePrompt always saves its class embeddings in checkpoints, as VPD's released model does"
    ),
    "MODEL.VPD.REFER.LANG_GATE": "the referring decoder is VPD's, which has no language gates",
    "MODEL.VPD.REFER.TEXT_DIM": "it only sized the removed language gates",
    "MODEL.VPD.REFER.NORM": "the referring decoder is VPD's, with BatchNorm",
    "MODEL.VPD.UPER.AUX_CONCAT_INPUT": "Meta-Prompts' auxiliary FCN head never concatenates its input",
    "MODEL.VPD.FPN_HEAD.LOSS_AVG_NON_IGNORE": (
        "FPNHead's cross-entropy is always VPD's (mmseg's): the sum over labelled pixels / all pixels"
    ),
    "MODEL.VPD.REARRANGE.ENABLED": (
        'the re-arrangement is MetaPromptsBackbone\'s: set MODEL.BACKBONE.NAME "MetaPromptsBackbone"'
    ),
    "MODEL.META_PROMPTS.REARRANGE.ENABLED": (
        'the re-arrangement is MetaPromptsBackbone\'s: set MODEL.BACKBONE.NAME "MetaPromptsBackbone"'
    ),
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": "the padding is the backbone's size_divisibility (64 for SD v1)",
    "DATA.SIZE_DIVISIBILITY": "the padding is the backbone's size_divisibility (64 for SD v1)",
    "MODEL.PNG.EVAL_RESOLUTION": (
        'replaced by MODEL.PNG.EVAL_PROTOCOL: 0 (original size) is now "exact"; the official protocol is "official"'
    ),
}


def _leaf_names(data: Mapping, prefix: str = "") -> Iterator[str]:
    for name, value in data.items():
        full = f"{prefix}{name}"
        yield full
        if isinstance(value, Mapping):
            yield from _leaf_names(value, full + ".")


def _explain(key: str) -> str:
    if key in RENAMED:
        return f"{key} is now {RENAMED[key]}"
    return f"{key} was removed: {REMOVED[key]}"


def check_renamed_keys(keys: Iterable[str], source: str) -> None:
    """Raise a ``KeyError`` naming every renamed / removed key among ``keys`` (from ``source``)."""
    old = [k for k in dict.fromkeys(keys) if k in RENAMED or k in REMOVED]
    if old:
        lines = "\n  ".join(_explain(k) for k in old)
        raise KeyError(f"{source} sets config keys that no longer exist; update it:\n  {lines}")


def check_renamed_yaml(path: str) -> None:
    """:func:`check_renamed_keys` on a yaml file and every ``_BASE_`` file it builds on."""
    seen: List[str] = []

    def visit(p):
        p = os.path.abspath(p)
        if p in seen or not os.path.isfile(p):
            return  # a cycle, or a missing base: the merge itself reports it
        seen.append(p)
        with open(p) as f:
            data = yaml.safe_load(f)
        if not isinstance(data, Mapping):
            return
        bases = data.get("_BASE_") or []
        for base in [bases] if isinstance(bases, str) else bases:
            base = os.path.expanduser(str(base))
            visit(base if os.path.isabs(base) else os.path.join(os.path.dirname(p), base))
        check_renamed_keys(_leaf_names({k: v for k, v in data.items() if k != "_BASE_"}), f"config file {p}")

    visit(path)


def check_renamed_opts(opts: Sequence) -> None:
    """:func:`check_renamed_keys` on ``KEY VALUE`` override pairs."""
    check_renamed_keys((str(k) for k in list(opts)[0::2]), "the config overrides")
