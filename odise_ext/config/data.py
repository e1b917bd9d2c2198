from detectron2.config import CfgNode as CN

from .checks import ConfigError

# Values of DATA.CHECK_{TRAIN,TEST}_ANNOTATIONS (meaning: odise_ext/data/validation.py).
ANNOTATION_CHECK_LEVELS = ("none", "files", "full")


def add_data_config(cfg):
    """Data-pipeline keys (namespace ``DATA``): which dataset mapper builds the model inputs."""
    cfg.DATA = CN()
    # Registered name (odise_ext.data.DATASET_MAPPER_REGISTRY) of the training dataset mapper.
    cfg.DATA.TRAIN_MAPPER = "PanopticLSJMapper"
    # Registered name of the test-time mapper ("" = detectron2's DatasetMapper in test mode).
    cfg.DATA.TEST_MAPPER = ""
    # Large-scale jitter (ODISE): output crop side, and the min/max scale of that side.
    cfg.DATA.LSJ = CN()
    cfg.DATA.LSJ.IMAGE_SIZE = 1024
    cfg.DATA.LSJ.MIN_SCALE = 0.1
    cfg.DATA.LSJ.MAX_SCALE = 2.0
    # Ground-truth checks when a dataset is loaded (odise_ext/data/validation.py): "none";
    # "files" (every image / label file exists, its header size matches the image: no decoding);
    # "full" ("files" + panoptic PNGs decoded: their segment ids must be those of segments_info).
    cfg.DATA.CHECK_TRAIN_ANNOTATIONS = "files"
    cfg.DATA.CHECK_TEST_ANNOTATIONS = "full"
    # Drop (count, log) training records that fail the check instead of stopping; test records
    # never are (a skipped image would change the benchmark).
    cfg.DATA.SKIP_BAD_TRAIN_ANNOTATIONS = False
    # Training images that fail to decode while training (corrupt past their header) are
    # skipped, logged and counted (odise_ext/data/resumable.py; a resumed run skips the same
    # ones); more than this many distinct ones stop training with their list.
    cfg.DATA.MAX_BAD_SAMPLES = 10
    # Largest image (height x width, in pixels) the predictors, tools/demo.py and the web demo
    # accept; larger ones are refused before decoding. Outputs are at the input's resolution
    # (e.g. ODISE's sem_seg holds K floats per pixel), so memory grows with this; raise it for
    # bigger images on a machine that has the memory.
    cfg.DATA.MAX_INPUT_PIXELS = 4096 * 4096


def check_data_config(cfg):
    """Values of the ``DATA`` keys that only some strings are (checked when a config is set up)."""
    for key in ("CHECK_TRAIN_ANNOTATIONS", "CHECK_TEST_ANNOTATIONS"):
        if cfg.DATA[key] not in ANNOTATION_CHECK_LEVELS:
            raise ConfigError(f"DATA.{key} = {cfg.DATA[key]!r} must be one of {ANNOTATION_CHECK_LEVELS}")
    if not isinstance(cfg.DATA.MAX_BAD_SAMPLES, int) or cfg.DATA.MAX_BAD_SAMPLES < 0:
        raise ConfigError(f"DATA.MAX_BAD_SAMPLES = {cfg.DATA.MAX_BAD_SAMPLES!r} must be an integer >= 0")
