"""FrozenModule on a toy model: no grads for its weights (but through it), eval mode in training,
not in state dicts (only a source record), loading without its weights."""
import json
import logging

import pytest
import torch
from torch import nn

from odise_ext.diffusion.frozen import FrozenModule, parse_dtype


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 4)
        inner = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
        self.frozen = FrozenModule(inner, {"weights": "/somewhere/w.ckpt"})

    def forward(self, x):
        return self.frozen(self.head(x))


def test_gradients_flow_through_but_not_into_frozen_weights():
    model = Toy().train()
    x = torch.randn(8, 4)
    model(x).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in model.frozen.parameters())
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]


def test_stays_in_eval_mode():
    model = Toy().train()
    assert model.training and model.head.training
    assert not any(m.training for m in model.frozen.modules())
    x = torch.randn(8, 4)
    running = model.frozen.module[2].running_mean.clone()
    torch.testing.assert_close(model(x), model(x))  # dropout off
    torch.testing.assert_close(model.frozen.module[2].running_mean, running)  # BN stats untouched


def test_state_dict_has_only_the_source_record():
    model = Toy()
    state = model.state_dict()
    assert sorted(state) == ["frozen._extra_state", "head.bias", "head.weight"]
    record = state["frozen._extra_state"]
    assert record.dtype == torch.uint8
    assert json.loads(bytes(record.tolist()).decode()) == {"weights": "/somewhere/w.ckpt"}


def test_load_without_frozen_weights():
    src, dst = Toy(), Toy()
    frozen_before = {k: v.clone() for k, v in dst.frozen.module.state_dict().items()}
    state = src.state_dict()
    result = dst.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(dst.head.weight, src.head.weight)
    for k, v in dst.frozen.module.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k])  # untouched
    del state["frozen._extra_state"]
    assert dst.load_state_dict(state, strict=True).missing_keys == []
    del state["head.bias"]
    assert Toy().load_state_dict(state, strict=False).missing_keys == ["head.bias"]


def test_other_source_warns(caplog):
    src, dst = Toy(), Toy()
    dst.frozen.source = {"weights": "/elsewhere/other.ckpt"}
    with caplog.at_level(logging.WARNING):
        dst.load_state_dict(src.state_dict())
    assert "/somewhere/w.ckpt" in caplog.text and "/elsewhere/other.ckpt" in caplog.text


def test_dtype():
    frozen = FrozenModule(nn.Linear(2, 2), {}, torch.bfloat16)
    assert frozen.module.weight.dtype == torch.bfloat16 and frozen.dtype == torch.bfloat16
    assert parse_dtype("float16") == torch.float16
    with pytest.raises(ValueError, match="Unknown dtype 'fp8'"):
        parse_dtype("fp8")
