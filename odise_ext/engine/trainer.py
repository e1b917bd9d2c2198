"""The training / evaluation driver used by ``tools/train_net.py``.

It is detectron2's :class:`DefaultTrainer` with our pieces plugged in: the dataset mapper and
evaluators named by the config, our optimizer (trainable parameters only, lr multipliers,
full-model clipping), atomic checkpoints, and a DDP wrapper that also works for CPU processes
(gloo), so ``--num-gpus 2`` runs on a machine without GPUs.
"""
import logging
import weakref

import torch

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..data.build import build_dataset_mapper
from .checkpoint import AtomicCheckpointer
from .evaluators import build_evaluators
from .optimizer import build_optimizer

__all__ = ["Trainer", "amp_precision", "create_ddp_model"]


def create_ddp_model(model, **kwargs):
    """Wrap ``model`` in DDP when there are several processes; CPU models get ``device_ids=None``.

    Frozen sub-modules hold no trainable parameters, and a model may leave some trainable
    parameters unused in an iteration (e.g. caption heads on label-only batches), hence
    ``find_unused_parameters=True``.
    """
    if comm.get_world_size() == 1:
        return model
    on_gpu = next(model.parameters()).device.type == "cuda"
    kwargs.setdefault("device_ids", [comm.get_local_rank()] if on_gpu else None)
    kwargs.setdefault("find_unused_parameters", True)
    return DistributedDataParallel(model, **kwargs)


def amp_precision() -> torch.dtype:
    """Autocast dtype of ``SOLVER.AMP.ENABLED``: bf16 where the GPU has it (the dtype the frozen
    SD/CLIP weights run in, so autocast does not re-cast them op by op; no overflow), else fp16.
    Losses run in float32 either way (``odise_ext.modeling.precision``)."""
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        if cfg.SOLVER.AMP.ENABLED:
            self._trainer = AMPTrainer(model, data_loader, optimizer, precision=amp_precision())
        else:
            self._trainer = SimpleTrainer(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in model.parameters())
        logging.getLogger(__name__).info(f"Parameters: {n_train / 1e6:.2f}M trainable of {n_all / 1e6:.2f}M")
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=build_dataset_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=build_dataset_mapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluators(cfg, dataset_name, output_folder)
