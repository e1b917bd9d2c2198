"""Every task family runs a training step and inference with its frozen SD/CLIP in bf16, on the
CPU always and on CUDA where there is a GPU (the `cuda` variants run in scripts/device_check.sh):
losses in float32 and finite, gradients finite and only on trainable weights, outputs finite."""
import copy

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

import odise_ext  # noqa: F401  (datasets, mappers, models)
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper

from conftest import DEVICES

FAMILIES = [
    "odise_tiny",
    "png_tiny",
    "vpd_semseg_tiny",
    "vpd_metaprompts_semseg_tiny",
    "vpd_depth_tiny",
    "vpd_metaprompts_depth_tiny",
    "vpd_refer_tiny",
    "vpd_pose_tiny",
]


def _inputs(cfg, is_train, count=2):
    mapper = build_dataset_mapper(cfg, is_train)
    name = cfg.DATASETS.TRAIN[0] if is_train else cfg.DATASETS.TEST[0]
    out = []
    for d in DatasetCatalog.get(name):
        x = mapper(copy.deepcopy(d))
        # as the train loader does (DATALOADER.FILTER_EMPTY_ANNOTATIONS): images with annotations
        if x is not None and not (is_train and "instances" in x and len(x["instances"]) == 0):
            out.append(x)
        if len(out) == count:
            return out
    raise AssertionError(f"{name} has fewer than {count} usable samples")


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
    elif hasattr(obj, "get_fields"):  # detectron2 Instances
        yield from _tensors(obj.get_fields())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", FAMILIES)
def test_train_step_and_inference_with_bf16_frozen_weights(family, device):
    cfg = setup_cfg(
        f"configs/testing/{family}.yaml",
        ["MODEL.DEVICE", device, "MODEL.DIFFUSION.DTYPE", "bfloat16", "MODEL.CLIP.DTYPE", "bfloat16"],
        freeze=True,
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    assert all(p.device.type == device for p in model.parameters())

    model.train()
    losses = model(_inputs(cfg, True))
    assert losses
    for name, value in losses.items():
        assert value.dtype == torch.float32 and value.dim() == 0, name
        assert torch.isfinite(value), (name, value)
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in frozen)

    model.eval()
    with torch.no_grad():
        outputs = model(_inputs(cfg, False))
    values = [t for t in _tensors(outputs) if t.is_floating_point()]
    assert values and all(torch.isfinite(t).all() for t in values)
    assert all(t.device.type == device for t in values)


@pytest.mark.cuda
@pytest.mark.parametrize("family", ["odise_tiny", "vpd_semseg_tiny"])
def test_amp_training_step_on_cuda(family, tmp_path):
    from odise_ext.engine.trainer import Trainer, amp_precision

    cfg = setup_cfg(
        f"configs/testing/{family}.yaml",
        ["MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", True, "OUTPUT_DIR", str(tmp_path),
         "MODEL.DIFFUSION.DTYPE", "bfloat16", "MODEL.CLIP.DTYPE", "bfloat16"],
        freeze=True,
    )
    torch.manual_seed(0)
    trainer = Trainer(cfg)
    assert trainer._trainer.precision == amp_precision() == torch.bfloat16
    model = trainer._trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
        latest = storage.latest()
    assert torch.isfinite(torch.tensor(latest["total_loss"][0]))
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "the AMP step must update trainable weights"
