from detectron2.config import CfgNode as CN


def add_solver_config(cfg):
    """Optimizer keys (namespace ``OPTIMIZER``); schedules stay in detectron2's ``SOLVER``.

    Full-model gradient clipping uses detectron2's ``SOLVER.CLIP_GRADIENTS`` with
    ``CLIP_TYPE: "full_model"`` (the Mask2Former convention).
    """
    cfg.OPTIMIZER = CN()
    # "ADAMW" or "SGD" (odise_ext.engine.optimizer.OPTIMIZERS).
    cfg.OPTIMIZER.NAME = "ADAMW"
    # AdamW betas.
    cfg.OPTIMIZER.BETAS = (0.9, 0.999)
    # [[param-name prefix, lr factor], ...]; the longest matching prefix wins, e.g. [["backbone.unet", 0.1]].
    cfg.OPTIMIZER.LR_MULTIPLIERS = []
    # Parameter names (last name component) that get no weight decay, e.g. learnable embeddings.
    cfg.OPTIMIZER.NO_WEIGHT_DECAY_PARAMS = []
