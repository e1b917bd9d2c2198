"""Every tiny VPD / Meta-Prompts config learns on the embedded shapes world: a short CPU training
run must lift the task metric on the validation split well above the untrained model's.

Numbers are deterministic for a given machine (seeded init and data order); thresholds leave room
for other BLAS builds. Training uses the project's optimizer builder (lr multipliers) and mapper
registry, and detectron2's loaders, scheduler and ``inference_on_dataset``; evaluation uses the
project's evaluator table (``build_evaluators``), as ``tools/train_net.py`` does.
"""
import logging

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler

import odise_ext.data  # noqa: F401  (registers the shapes datasets)
import odise_ext.data.dataset_mappers.vpd_depth  # noqa: F401
import odise_ext.data.dataset_mappers.vpd_keypoints  # noqa: F401
import odise_ext.data.dataset_mappers.vpd_refer  # noqa: F401
import odise_ext.data.dataset_mappers.vpd_semseg  # noqa: F401
import odise_ext.modeling.meta_arch.vpd_depth  # noqa: F401
import odise_ext.modeling.meta_arch.vpd_pose  # noqa: F401
import odise_ext.modeling.meta_arch.vpd_refer  # noqa: F401
import odise_ext.modeling.meta_arch.vpd_semseg  # noqa: F401
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper
from odise_ext.engine.evaluators import build_evaluators
from odise_ext.engine.optimizer import build_optimizer


def _subset(name, count):
    """The first ``count`` dicts of ``name`` as a dataset of their own (shorter evaluation)."""
    sub = f"{name}_first{count}"
    if sub not in DatasetCatalog:
        DatasetCatalog.register(sub, lambda: DatasetCatalog.get(name)[:count])
        meta = MetadataCatalog.get(name).as_dict()
        meta.pop("name")
        MetadataCatalog.get(sub).set(**meta)
    return sub


def _evaluate(cfg, model, count, output_dir):
    name = _subset(cfg.DATASETS.TEST[0], count)
    loader = build_detection_test_loader(cfg, name, mapper=build_dataset_mapper(cfg, False), batch_size=8)
    # the project's evaluator table, chosen by the dataset's evaluator_type (as in tools/train_net.py)
    evaluator = build_evaluators(cfg, name, str(output_dir))
    logging.disable(logging.WARNING)
    try:
        return inference_on_dataset(model, loader, evaluator)
    finally:
        logging.disable(logging.NOTSET)


def train_and_evaluate(config, shapes_root, tmp_path, *opts, eval_count=12):
    cfg = setup_cfg(config, ["OUTPUT_DIR", str(tmp_path), *opts], freeze=True)
    torch.manual_seed(0)
    np.random.seed(0)
    model = build_model(cfg)
    model.eval()
    before = _evaluate(cfg, model, eval_count, tmp_path / "untrained")
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    data = iter(build_detection_train_loader(cfg, mapper=build_dataset_mapper(cfg, True)))
    model.train()
    for _ in range(cfg.SOLVER.MAX_ITER):
        loss = sum(model(next(data)).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    return before, _evaluate(cfg, model, eval_count, tmp_path / "trained")


@pytest.mark.parametrize("config", ["vpd_semseg_tiny", "vpd_metaprompts_semseg_tiny"])
def test_semantic_segmentation_learns(config, shapes_root, tmp_path):
    iters = {"vpd_semseg_tiny": 60, "vpd_metaprompts_semseg_tiny": 40}[config]
    before, after = train_and_evaluate(
        f"configs/testing/{config}.yaml", shapes_root, tmp_path, "SOLVER.MAX_ITER", iters
    )
    print(config, "mIoU untrained", before["sem_seg"]["mIoU"], "trained", after["sem_seg"]["mIoU"])
    # 64 px inputs through a random 4-channel VAE latent of 8 x 8: the shapes (1-3 latent pixels)
    # stay out of reach in so few steps, the stuff classes are learnt
    assert after["sem_seg"]["mIoU"] > 2.5 * before["sem_seg"]["mIoU"]
    assert after["sem_seg"]["mIoU"] > before["sem_seg"]["mIoU"] + 4
    assert after["sem_seg"]["pACC"] > before["sem_seg"]["pACC"] + 10


@pytest.mark.parametrize("config", ["vpd_depth_tiny", "vpd_metaprompts_depth_tiny"])
def test_depth_learns(config, shapes_root, tmp_path):
    before, after = train_and_evaluate(f"configs/testing/{config}.yaml", shapes_root, tmp_path)
    b, a = before["depth"], after["depth"]
    print(config, "untrained", dict(b), "trained", dict(a))
    assert a["d1"] > b["d1"] + 0.1
    assert a["abs_rel"] < 0.5 * b["abs_rel"]
    assert a["rmse"] < 0.8 * b["rmse"]


def test_referring_segmentation_learns(shapes_root, tmp_path):
    before, after = train_and_evaluate("configs/testing/vpd_refer_tiny.yaml", shapes_root, tmp_path, eval_count=24)
    print("refer untrained", dict(before["refer"]), "trained", dict(after["refer"]))
    # 40 steps mostly learn "where the shapes are" (the referred one among ~2.5 of them)
    assert after["refer"]["oIoU"] > 1.8 * before["refer"]["oIoU"] + 1
    assert after["refer"]["mIoU"] > 1.8 * before["refer"]["mIoU"] + 1


def test_pose_learns(shapes_root, tmp_path):
    before, after = train_and_evaluate("configs/testing/vpd_pose_tiny.yaml", shapes_root, tmp_path, eval_count=24)
    print("pose untrained", dict(before["keypoints"]), "trained", dict(after["keypoints"]))
    assert after["keypoints"]["AP"] > before["keypoints"]["AP"] + 10
