"""Frozen networks are built with one copy of their weights: placeholders on the meta device
filled by assignment (with dtype conversion) from memory-mapped files, 16-bit random init."""
import torch
from torch import nn

from odise_ext.diffusion.lean_build import assign_state_dict, cast_while_building, parameters_on_meta
from odise_ext.utils.safe_load import safe_torch_load


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.GroupNorm(2, 4)
        self.register_buffer("ids", torch.arange(5), persistent=False)


def test_parameters_on_meta_keep_buffers_real():
    with parameters_on_meta():
        net = _Net()
    assert all(p.device.type == "meta" for p in net.parameters())
    assert torch.equal(net.ids, torch.arange(5))  # a buffer no file holds
    # and registering parameters works normally again afterwards
    assert nn.Linear(2, 2).weight.device.type == "cpu"


def test_assign_from_a_memory_mapped_file_converts_and_does_not_copy(tmp_path):
    torch.manual_seed(0)
    source = _Net()
    torch.save(source.state_dict(), tmp_path / "net.pt")
    state = safe_torch_load(str(tmp_path / "net.pt"), mmap=True)

    with parameters_on_meta():
        same = _Net()
    assign_state_dict(same, dict(state))
    # float32 -> float32: the file's tensors themselves (memory-mapped), no second copy
    assert same.conv.weight.data_ptr() == state["conv.weight"].data_ptr()
    assert torch.equal(same.conv.weight, source.conv.weight)
    assert same.conv.weight.requires_grad  # the placeholder's flag is kept

    with parameters_on_meta():
        half = _Net()
    assign_state_dict(half, dict(state), torch.bfloat16)
    assert half.conv.weight.dtype == torch.bfloat16
    assert torch.equal(half.conv.weight, source.conv.weight.to(torch.bfloat16))
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(half.norm(half.conv(x.bfloat16())).float(), source.norm(source.conv(x)), rtol=0.05, atol=0.05)


def test_missing_parameters_are_an_error(tmp_path):
    with parameters_on_meta():
        net = _Net()
    try:
        assign_state_dict(net, {"conv.weight": torch.zeros(4, 3, 3, 3)})
    except (RuntimeError, ValueError) as e:
        assert "norm.weight" in str(e) or "Missing" in str(e)
    else:
        raise AssertionError("a partial state dict must not load")


def test_cast_while_building_rounds_the_float32_init_and_restores():
    torch.manual_seed(0)
    ref = _Net()
    torch.manual_seed(0)
    with cast_while_building(torch.bfloat16):
        net = _Net()
    assert net.conv.weight.dtype == torch.bfloat16 and net.ids.dtype == torch.int64
    # the same random stream as a float32 build: every weight is its float32 value, rounded
    for (name, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b.to(a.dtype)), name
    assert nn.Conv2d(1, 1, 1).weight.dtype == torch.float32  # patches removed



def test_lean_builds_patch_no_nn_module_method_and_only_this_thread():
    import threading

    methods = (nn.Module.__setattr__, nn.Module.add_module, nn.Module.register_parameter)
    built, ready, done = {}, threading.Event(), threading.Event()

    def other_thread():
        ready.wait(10)
        built["other"] = _Net()  # built while the main thread is inside both blocks
        done.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with parameters_on_meta(), cast_while_building(torch.bfloat16):
        assert (nn.Module.__setattr__, nn.Module.add_module, nn.Module.register_parameter) == methods
        ready.set()
        assert done.wait(10)
        mine = _Net()
    worker.join()
    assert all(p.device.type == "meta" and p.dtype == torch.bfloat16 for p in mine.parameters())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in built["other"].parameters())
    # and nothing is left registered afterwards
    after = nn.Linear(2, 2)
    assert after.weight.device.type == "cpu" and after.weight.dtype == torch.float32
