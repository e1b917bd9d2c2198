"""The start of a training / evaluation job: detectron2's ``default_setup`` steps, with the
``config.yaml`` backup written atomically (a kill or a full disk never leaves half of it).

Steps, as in ``detectron2.engine.default_setup``: the output directory, the detectron2 and
fvcore loggers (console and ``log.txt``), environment / arguments / config logged, the config
saved to ``OUTPUT_DIR/config.yaml`` (main process), every generator seeded with ``SEED + rank``
(``SEED < 0``: a random seed), ``torch.backends.cudnn.benchmark`` from ``CUDNN_BENCHMARK``
(training only).
"""
import logging
import os

import torch
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from ..utils.atomic_io import atomic_write_bytes

__all__ = ["default_setup"]


def default_setup(cfg, args) -> logging.Logger:
    """``cfg``: a yacs ``CfgNode`` with ``OUTPUT_DIR``, ``SEED``, ``CUDNN_BENCHMARK``; ``args``:
    the parsed command line (``config_file``, ``eval_only``). Returns detectron2's logger."""
    output_dir = cfg.OUTPUT_DIR
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    rank = comm.get_rank()
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    logger = setup_logger(output_dir, distributed_rank=rank)
    logger.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    logger.info("Environment info:\n" + collect_env_info())
    logger.info(f"Command line arguments: {args}")
    if getattr(args, "config_file", ""):
        with open(args.config_file) as f:
            logger.info(f"Contents of args.config_file={args.config_file}:\n{f.read()}")
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        text = cfg.dump()
        logger.info(f"Running with full config:\n{text}")
        atomic_write_bytes(path, text.encode())
        logger.info(f"Full config saved to {path}")
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK
    return logger
