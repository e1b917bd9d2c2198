"""The training / evaluation driver used by ``tools/train_net.py``.

It is detectron2's :class:`DefaultTrainer` with our pieces plugged in: the dataset mapper and
evaluators named by the config, our optimizer (trainable parameters only, lr multipliers,
full-model clipping), atomic checkpoints, and a DDP wrapper that also works for CPU processes
(gloo), so ``--num-gpus 2`` runs on a machine without GPUs.
"""
import logging
import weakref

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..data.build import build_dataset_mapper
from ..data.validation import checked_dataset_dicts
from .checkpoint import AtomicCheckpointer
from .evaluators import build_evaluators
from .optimizer import build_optimizer

__all__ = ["Trainer", "create_ddp_model"]


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
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
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
        dataset = checked_dataset_dicts(cfg, cfg.DATASETS.TRAIN, is_train=True)
        return build_detection_train_loader(cfg, dataset=dataset, mapper=build_dataset_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        dataset = checked_dataset_dicts(cfg, dataset_name, is_train=False)
        return build_detection_test_loader(
            dataset, mapper=build_dataset_mapper(cfg, is_train=False), num_workers=cfg.DATALOADER.NUM_WORKERS
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, *, vocabulary=None):
        return build_evaluators(cfg, dataset_name, output_folder, vocabulary=vocabulary)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """detectron2's test loop; an open-vocabulary model's evaluators are built for its test
        vocabulary (all of them before the first inference, so a refusal comes up front)."""
        if evaluators is None:
            vocabulary = getattr(getattr(model, "module", model), "test_vocabulary", None)
            evaluators = [cls.build_evaluator(cfg, name, vocabulary=vocabulary) for name in cfg.DATASETS.TEST]
        return super().test(cfg, model, evaluators)
