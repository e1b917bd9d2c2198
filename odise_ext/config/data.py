from detectron2.config import CfgNode as CN


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
    # Pad images to a multiple of this in the model (Mask2Former/ODISE: 64, the latent stride x 8).
    cfg.DATA.SIZE_DIVISIBILITY = 64
