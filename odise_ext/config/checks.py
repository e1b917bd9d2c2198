"""Every config value with a rule, checked once before any model, data loader or process is built.

``check_cfg(cfg, world_size=...)`` raises :class:`ConfigError` whose message is one line naming the
key, its value and the rule, e.g.::

    MODEL.MASK_FORMER.HIDDEN_DIM = 30 must be divisible by MODEL.MASK_FORMER.NHEADS = 4

Without it a bad value fails late (after the model is built) or not at all: ``SOLVER.IMS_PER_BATCH
0`` hangs the data loader, ``SOLVER.CHECKPOINT_PERIOD 0`` divides by zero at the first iteration,
a width that heads cannot split fails inside ``nn.MultiheadAttention``. The tools print the
message as ``error: ...`` and exit with status 2 (``tools/one_line_errors.py``: :class:`ConfigError` is
marked ``one_line``).

Only values are read here (no task package is imported): a rule on a task's namespace applies
when that namespace is in the config.
"""
from typing import Iterable, Optional

from detectron2.utils import comm

__all__ = ["ConfigError", "check_cfg"]


class ConfigError(ValueError):
    """A config value breaks a rule; the message names the key, the value and the rule.
    Marked ``one_line`` (as ``early_checks.user_input_errors`` marks the user's input errors):
    ``tools/one_line_errors.py`` prints it as ``error: <message>`` and exits with status 2."""

    one_line = True


def cfg_value(cfg, key: str):
    """The value of the dotted ``key`` in ``cfg``; None where a part is missing."""
    node = cfg
    for part in key.split("."):
        if part not in node:
            return None
        node = node[part]
    return node


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fail(key, value, rule):
    raise ConfigError(f"{key} = {value!r} {rule}")


def _positive(cfg, keys: Iterable[str], allow_zero=False):
    for key in keys:
        v = cfg_value(cfg, key)
        if v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (v == 0 and not allow_zero):
            _fail(key, v, "must be a number >= 0" if allow_zero else "must be a number > 0")


def _positive_ints(cfg, keys: Iterable[str], allow_zero=False, allow_empty=True):
    """Each key holds an int or a list of ints, each > 0 (>= 0 with ``allow_zero``)."""
    for key in keys:
        v = cfg_value(cfg, key)
        if v is None:
            continue
        values = list(v) if isinstance(v, (list, tuple)) else [v]
        if not values and not allow_empty:
            _fail(key, v, "must list at least one size")
        for x in values:
            if not _is_int(x) or x < 0 or (x == 0 and not allow_zero):
                _fail(key, v, "must hold integers >= 0" if allow_zero else "must hold integers > 0")


def _divisible(cfg, key: str, by_key: str = "", by: int = 0, when: bool = True):
    if not when:
        return
    v = cfg_value(cfg, key)
    d = cfg_value(cfg, by_key) if by_key else by
    if v is None or d is None:
        return
    if not _is_int(d) or d <= 0:
        _fail(by_key, d, "must be an integer > 0")
    by_text = f"{by_key} = {d}" if by_key else str(d)
    if not _is_int(v) or v <= 0 or v % d:
        _fail(key, v, f"must be an integer > 0 divisible by {by_text}")


def _schedule(cfg, world_size: int):
    batch = cfg.SOLVER.IMS_PER_BATCH
    if not _is_int(batch) or batch <= 0:
        _fail("SOLVER.IMS_PER_BATCH", batch, "must be an integer > 0 (images per iteration over all processes)")
    if batch % world_size:
        _fail("SOLVER.IMS_PER_BATCH", batch, f"must be divisible by the number of processes ({world_size})")
    _positive_ints(cfg, ["SOLVER.MAX_ITER", "SOLVER.CHECKPOINT_PERIOD"])
    _positive_ints(cfg, ["TEST.EVAL_PERIOD", "DATALOADER.NUM_WORKERS", "SOLVER.WARMUP_ITERS"], allow_zero=True)
    _positive(cfg, ["SOLVER.BASE_LR", "SOLVER.WEIGHT_DECAY"], allow_zero=True)
    steps = list(cfg_value(cfg, "SOLVER.STEPS") or ())
    if any(not _is_int(s) or s <= 0 for s in steps) or steps != sorted(steps):
        _fail("SOLVER.STEPS", cfg.SOLVER.STEPS, "must be increasing integers > 0")


def _sizes(cfg):
    _positive_ints(cfg, ["INPUT.MIN_SIZE_TRAIN"], allow_empty=False)
    # 0 = no test resize (detectron2)
    _positive_ints(cfg, ["INPUT.MIN_SIZE_TEST"], allow_zero=True)
    _positive_ints(cfg, ["MODEL.MASK_FORMER.TEST.POSTPROCESS_CHUNK_PIXELS"])
    _positive_ints(cfg, ["INPUT.MAX_SIZE_TRAIN", "INPUT.MAX_SIZE_TEST", "DATA.MAX_INPUT_PIXELS",
                         "DATA.LSJ.IMAGE_SIZE", "DATA.PNG.IMAGE_SIZE", "MODEL.DIFFUSION.WINDOW_SIZE",
                         "TEST.DENSE.CROP_SIZE", "TEST.DENSE.STRIDE", "DATA.DEPTH.CROP_SIZE",
                         "DATA.REFER.SIZE", "DATA.POSE.CROP_SIZE",
                         "DATA.SEM_SEG.BASE_SIZE"])
    _positive_ints(cfg, ["DATA.SIZE_DIVISIBILITY"], allow_zero=True)
    if cfg_value(cfg, "INPUT.CROP.ENABLED"):
        kind, size = cfg.INPUT.CROP.TYPE, list(cfg.INPUT.CROP.SIZE)
        if kind in ("absolute", "absolute_range"):
            _positive_ints(cfg, ["INPUT.CROP.SIZE"], allow_empty=False)
        elif kind in ("relative", "relative_range") and not all(
                isinstance(s, (int, float)) and 0 < s <= 1 for s in size):
            _fail("INPUT.CROP.SIZE", cfg.INPUT.CROP.SIZE, f"must hold fractions in (0, 1] for INPUT.CROP.TYPE {kind!r}")
    lo, hi = cfg_value(cfg, "DATA.LSJ.MIN_SCALE"), cfg_value(cfg, "DATA.LSJ.MAX_SCALE")
    if lo is not None:
        _positive(cfg, ["DATA.LSJ.MIN_SCALE", "DATA.LSJ.MAX_SCALE"])
        if lo > hi:
            _fail("DATA.LSJ.MIN_SCALE", lo, f"must be <= DATA.LSJ.MAX_SCALE = {hi!r}")


def _widths(cfg):
    mf = "MODEL.MASK_FORMER"
    _positive_ints(cfg, [f"{mf}.NUM_DECODER_LAYERS", f"{mf}.NUM_OBJECT_QUERIES"], allow_zero=True)
    _positive_ints(cfg, [f"{mf}.DIM_FEEDFORWARD", f"{mf}.MASK_DIM", f"{mf}.TRAIN_NUM_POINTS"], allow_zero=True)
    _divisible(cfg, f"{mf}.HIDDEN_DIM", f"{mf}.NHEADS")
    _divisible(cfg, "MODEL.SEM_SEG_HEAD.CONVS_DIM", f"{mf}.PIXEL_DECODER.NHEADS")
    # the deformable pixel decoder's input projections are GroupNorm(32, CONVS_DIM); so is "GN"
    uses_gn = (cfg_value(cfg, f"{mf}.PIXEL_DECODER.NAME") == "MSDeformAttnPixelDecoder"
               or cfg_value(cfg, "MODEL.SEM_SEG_HEAD.NORM") == "GN")
    _divisible(cfg, "MODEL.SEM_SEG_HEAD.CONVS_DIM", by=32, when=uses_gn)
    _divisible(cfg, "MODEL.DIFFUSION.PROJECTION.BOTTLENECK_CHANNELS", by=32,
               when=cfg_value(cfg, "MODEL.DIFFUSION.PROJECTION.NORM") == "GN")
    _divisible(cfg, "MODEL.DIFFUSION.PROJECTION.OUT_CHANNELS", by=32,
               when=cfg_value(cfg, "MODEL.DIFFUSION.PROJECTION.NORM") == "GN")
    png = "MODEL.PNG"
    _divisible(cfg, f"{png}.EIPA.DIM", f"{png}.EIPA.NHEADS")
    _divisible(cfg, f"{png}.HIDDEN_DIM", f"{png}.MLMA.NHEADS")
    _divisible(cfg, f"{png}.HIDDEN_DIM", f"{png}.DECODER.NHEADS")
    _divisible(cfg, "MODEL.DEPTH_HEAD.FUSE_DIM", "MODEL.DEPTH_HEAD.GN_GROUPS")


def check_cfg(cfg, world_size: Optional[int] = None) -> None:
    """Raise :class:`ConfigError` (one line: key, value, rule) at the first value that breaks a
    rule; ``world_size`` is the number of training processes (``IMS_PER_BATCH`` is split over
    them; default: this process group's size)."""
    from .data import check_data_config  # (data.py imports ConfigError from here)

    check_data_config(cfg)
    if world_size is None:
        world_size = comm.get_world_size()
    _schedule(cfg, world_size)
    _sizes(cfg)
    _widths(cfg)

