"""Shared by the learning tests: a short in-process training run of a tiny config on the embedded
shapes world, evaluated before and after on the first validation samples.

Training uses the project's optimizer builder (lr multipliers) and mapper registry and detectron2's
loaders, scheduler and ``inference_on_dataset``; evaluation uses the project's evaluator table
(``build_evaluators``, chosen by the dataset's ``evaluator_type``), as ``tools/train_net.py`` does.
"""
import logging

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
