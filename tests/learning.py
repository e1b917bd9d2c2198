"""Shared by the learning tests: a short in-process training run of a tiny config on the embedded
shapes world, evaluated before and after on the first validation samples.

Training uses the project's optimizer builder (lr multipliers) and mapper registry and detectron2's
loaders, scheduler and ``inference_on_dataset``; evaluation uses the project's evaluator table
(``build_evaluators``, chosen by the dataset's ``evaluator_type``), as ``tools/train_net.py`` does.
"""
import logging
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler

import odise_ext  # noqa: F401  (registers datasets, mappers and models)
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper
from odise_ext.engine.evaluators import build_evaluators
from odise_ext.engine.optimizer import build_optimizer


def dataset_subset(name, count):
    """The first ``count`` dicts of ``name`` as a dataset of their own (shorter evaluation)."""
    sub = f"{name}_first{count}"
    if sub not in DatasetCatalog:
        DatasetCatalog.register(sub, lambda: DatasetCatalog.get(name)[:count])
        meta = MetadataCatalog.get(name).as_dict()
        meta.pop("name")
        MetadataCatalog.get(sub).set(**meta)
    return sub


def evaluate(cfg, model, count, output_dir):
    name = dataset_subset(cfg.DATASETS.TEST[0], count)
    loader = build_detection_test_loader(cfg, name, mapper=build_dataset_mapper(cfg, False), batch_size=8)
    evaluator = build_evaluators(cfg, name, str(output_dir))
    logging.disable(logging.WARNING)
    try:
        return inference_on_dataset(model, loader, evaluator)
    finally:
        logging.disable(logging.NOTSET)


def train_and_evaluate(config, tmp_path, *opts, eval_count=12):
    """Returns ``(metrics before, metrics after, [total loss per iteration])``; seeded."""
    cfg = setup_cfg(config, ["OUTPUT_DIR", str(tmp_path), *opts], freeze=True)
    torch.manual_seed(0)
    np.random.seed(0)
    model = build_model(cfg)
    model.eval()
    before = evaluate(cfg, model, eval_count, tmp_path / "untrained")
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    data = iter(build_detection_train_loader(cfg, mapper=build_dataset_mapper(cfg, True)))
    model.train()
    history = []
    for _ in range(cfg.SOLVER.MAX_ITER):
        losses = model(next(data))
        loss = sum(losses.values())
        assert torch.isfinite(loss), {k: float(v) for k, v in losses.items()}
        history.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    return before, evaluate(cfg, model, eval_count, tmp_path / "trained"), history


class Gain(NamedTuple):
    """What a learning test asserts of one metric: ``trained <op> factor * untrained + margin``."""

    metric: str
    op: str  # ">": higher is better; "<": lower is better
    factor: float = 1.0
    margin: float = 0.0

    def holds(self, before: float, after: float) -> bool:
        bound = self.factor * before + self.margin
        return after > bound if self.op == ">" else after < bound

    def __str__(self) -> str:
        scaled = "untrained" if self.factor == 1 else f"{self.factor:g} × untrained"
        return f"{self.op} {scaled}" + (f" + {self.margin:g}" if self.margin else "")


class LearningRun(NamedTuple):
    """One learning test's run: config, training length, evaluated samples and the gains it asserts."""

    config: str
    max_iter: Optional[int]  # None: the config's SOLVER.MAX_ITER
    eval_count: int
    task: str  # the evaluator's result key ("sem_seg", "depth", ...)
    gains: Tuple[Gain, ...]


# The one source of the learning tests' settings and thresholds; docs/benchmarks.md documents
# the measured figures of each, and tests/test_docs.py checks them against these gains.
LEARNING_RUNS: Dict[str, LearningRun] = {
    "vpd_semseg_tiny": LearningRun("configs/testing/vpd_semseg_tiny.yaml", 60, 12, "sem_seg", (
        Gain("mIoU", ">", 2.5), Gain("mIoU", ">", 1, 4), Gain("pACC", ">", 1, 10))),
    "vpd_metaprompts_semseg_tiny": LearningRun("configs/testing/vpd_metaprompts_semseg_tiny.yaml", 40, 12, "sem_seg", (
        Gain("mIoU", ">", 2.5), Gain("mIoU", ">", 1, 4), Gain("pACC", ">", 1, 10))),
    "vpd_depth_tiny": LearningRun("configs/testing/vpd_depth_tiny.yaml", None, 12, "depth", (
        Gain("d1", ">", 1, 0.1), Gain("abs_rel", "<", 0.5), Gain("rmse", "<", 0.8))),
    "vpd_metaprompts_depth_tiny": LearningRun("configs/testing/vpd_metaprompts_depth_tiny.yaml", None, 12, "depth", (
        Gain("d1", ">", 1, 0.1), Gain("abs_rel", "<", 0.5), Gain("rmse", "<", 0.8))),
    "vpd_refer_tiny": LearningRun("configs/testing/vpd_refer_tiny.yaml", None, 24, "refer", (
        Gain("oIoU", ">", 1.8, 1), Gain("mIoU", ">", 1.8, 1))),
    "vpd_pose_tiny": LearningRun("configs/testing/vpd_pose_tiny.yaml", None, 24, "keypoints", (
        Gain("AP", ">", 1, 10),)),
    "png_shapes": LearningRun("configs/quickstart/png_shapes.yaml", 60, 24, "png", (
        Gain("AR", ">", 1, 5), Gain("AR", ">", 1.35), Gain("AR_stuff", ">", 1, 10), Gain("acc@0.5", ">", 1, 10))),
}


def run_learning(name, tmp_path):
    """The learning run ``name`` of :data:`LEARNING_RUNS`: ``(before, after, history)`` of its task."""
    run = LEARNING_RUNS[name]
    opts = () if run.max_iter is None else ("SOLVER.MAX_ITER", run.max_iter)
    before, after, history = train_and_evaluate(run.config, tmp_path, *opts, eval_count=run.eval_count)
    before, after = before[run.task], after[run.task]
    print(name, "untrained", dict(before), "trained", dict(after))
    return before, after, history


def assert_gains(name, before, after):
    """Every gain of the learning run ``name`` holds (one message per failed gain)."""
    failed = [
        f"{g.metric}: trained {after[g.metric]} is not {g} (untrained {before[g.metric]})"
        for g in LEARNING_RUNS[name].gains
        if not g.holds(before[g.metric], after[g.metric])
    ]
    assert not failed, f"{name}: " + "; ".join(failed)
