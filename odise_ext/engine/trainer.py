"""The training / evaluation driver used by ``tools/train_net.py``.

It is detectron2's :class:`DefaultTrainer` with our pieces plugged in: the dataset mapper and
evaluators named by the config, our optimizer (trainable parameters only, lr multipliers,
full-model clipping), atomic checkpoints, and a DDP wrapper that also works for CPU processes
(gloo), so ``--num-gpus 2`` runs on a machine without GPUs.

Resume is exact: each checkpoint also holds, per process, the training data stream's position
(``data/resumable.py``) and the state of every random generator the loop draws from, and
``resume_or_load`` puts both back, so a killed and resumed run continues with the same batches
and random draws as an uninterrupted one. Evaluation during training runs with the generators
saved and restored around it, so it does not shift the training's random streams.

Bookkeeping survives a kill at any point: a periodic evaluation runs *before* the checkpoint of
its iteration (detectron2 runs it after, so a kill in between resumed past an evaluation that
never ran), the checkpoint holds the logged scalars and ``metrics.json``'s state
(``metrics_writer``), and a resumed run that only has the final evaluation left stamps it with
the iteration an uninterrupted run does (``max_iter``).
"""
import logging
import os
import weakref

import torch
from detectron2.data import build_detection_test_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, TensorboardXWriter
from detectron2.utils.logger import setup_logger
from fvcore.nn.precise_bn import get_bn_modules
from torch.nn.parallel import DistributedDataParallel

from ..data.build import build_dataset_mapper
from ..data.resumable import build_resumable_train_loader
from ..data.validation import checked_dataset_dicts
from ..utils.atomic_io import remove_orphaned_tmp_files
from ..utils.rng_state import capture_rng_state, restore_rng_state
from .checkpoint import AtomicCheckpointer
from .evaluators import build_evaluators
from .metrics_writer import AtomicJSONWriter
from .optimizer import build_optimizer
from .storage_state import restore_storage, storage_state
from .train_hooks import EvalHook, GatherRankStates

__all__ = ["WRITER_PERIOD", "Trainer", "amp_precision", "create_ddp_model"]

# Iterations between two writes of the console / metrics.json / TensorBoard writers (detectron2's).
WRITER_PERIOD = 20


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
    Losses run in float32 either way (``odise_ext.utils.precision``)."""
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

    def rank_state(self):
        """This process's data-stream position and random generators (gathered into checkpoints)."""
        state = {"rng": capture_rng_state(), "data": self._trainer.data_loader.state_dict()}
        if getattr(self, "storage", None) is not None:
            state["storage"] = storage_state(self.storage)
        if getattr(self, "_metrics_writer", None) is not None:  # main process
            state["metrics_writer"] = self._metrics_writer.state_dict()
        return state

    def resume_or_load(self, resume=True):
        if comm.is_main_process():
            remove_orphaned_tmp_files(self.cfg.OUTPUT_DIR)
        comm.synchronize()
        extra = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if not (resume and self.checkpointer.has_checkpoint()):
            return
        self.start_iter = self.iter + 1
        states = extra.get("rank_states")
        logger = logging.getLogger(__name__)
        if not states:
            logger.warning("The checkpoint holds no data-stream / RNG state (older format): the resumed run "
                           "restarts the data stream and is not identical to an uninterrupted one.")
            return
        if len(states) != comm.get_world_size():
            logger.warning(
                f"The checkpoint was written by {len(states)} training processes, this run has "
                f"{comm.get_world_size()}: the data stream restarts and the run is not identical to an "
                f"uninterrupted one (exact resume needs the same number of processes)."
            )
            return
        state = states[comm.get_rank()]
        self._trainer.data_loader.load_state_dict(state["data"])
        restore_rng_state(state["rng"])
        self._resumed_storage = state.get("storage")
        if state.get("metrics_writer") and getattr(self, "_metrics_writer", None) is not None:
            self._metrics_writer.load_state_dict(state["metrics_writer"])

    def before_train(self):
        # the EventStorage exists from here on (TrainerBase.train creates it)
        if getattr(self, "_resumed_storage", None):
            pending = self._write_pending()
            restore_storage(self.storage, self._resumed_storage, all_latest=pending)
            self._resumed_storage = None
            if pending:
                self._metrics_writer.write()
        super().before_train()

    def _write_pending(self) -> bool:
        """Whether the run resumes from the checkpoint of a writer iteration (the writers run
        after the checkpointer) whose lines are not in metrics.json (those written after the
        checkpoint were cut off when its state was restored): they are written at once."""
        it, writer = self.start_iter - 1, getattr(self, "_metrics_writer", None)
        if writer is None or writer.state_dict()["last_write"] >= it:
            return False
        return (it + 1) % WRITER_PERIOD == 0 or it == self.max_iter - 1

    def after_train(self):
        # a run resumed from model_final has no step left: TrainerBase.train still adds 1 to the
        # iteration, which would stamp the final evaluation max_iter + 1
        self.iter = min(self.iter, self.max_iter)
        super().after_train()

    def build_hooks(self):
        """detectron2's default hooks in our order: evaluation (a collective; ours leaves the
        random generators alone), then our state gathering (a collective too: it holds the
        evaluation's scalars), then the checkpointer (main process only), then the writers; so a
        kill after a checkpoint never loses the evaluation of its iteration (detectron2 evaluates
        after checkpointing)."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0  # PreciseBN's own loader: saves memory and time
        ret = [
            hooks.IterationTimer(),
            hooks.LRScheduler(),
            # before evaluation and checkpoint: it updates the model (as in detectron2)
            hooks.PreciseBN(
                cfg.TEST.EVAL_PERIOD, self.model, self.build_train_loader(cfg), cfg.TEST.PRECISE_BN.NUM_ITER
            )
            if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model)
            else None,
            EvalHook(cfg.TEST.EVAL_PERIOD, self._test_and_save_results),
            GatherRankStates(cfg.SOLVER.CHECKPOINT_PERIOD),
        ]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=WRITER_PERIOD))
        return ret

    def _test_and_save_results(self) -> dict:
        # DefaultTrainer.train checks TEST.EXPECTED_RESULTS against the last results
        self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results

    def build_writers(self):
        # (main process only) its state goes into checkpoints: rank_state / resume_or_load
        self._metrics_writer = AtomicJSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))
        return [CommonMetricPrinter(self.max_iter), self._metrics_writer, TensorboardXWriter(self.cfg.OUTPUT_DIR)]

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
        return build_resumable_train_loader(cfg, mapper=build_dataset_mapper(cfg, is_train=True), dataset=dataset)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        dataset = checked_dataset_dicts(cfg, dataset_name, is_train=False)
        return build_detection_test_loader(
            dataset, mapper=build_dataset_mapper(cfg, is_train=False), num_workers=cfg.DATALOADER.NUM_WORKERS
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, *, model=None):
        return build_evaluators(cfg, dataset_name, output_folder, model=model)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """detectron2's test loop; the evaluators are built for the model (its
        ``prepare_evaluators`` hook: e.g. an open-vocabulary model's test vocabulary), all of them
        before the first inference, so a refusal comes up front."""
        if evaluators is None:
            evaluators = [cls.build_evaluator(cfg, name, model=model) for name in cfg.DATASETS.TEST]
        return super().test(cfg, model, evaluators)
