"""Files written on a full disk: no partial file is left behind, the previous version survives,
and the error names the file. The full disk is simulated by a write that stores part of its data
and then fails with ENOSPC."""
import errno
import json
import os
import stat
import sys
import types

import pytest
import torch

from odise_ext.config import setup_cfg
from odise_ext.utils import atomic_io
from odise_ext.utils.atomic_io import atomic_open, atomic_write_bytes, remove_orphaned_tmp_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
TINY = os.path.join(ROOT, "configs/testing/odise_tiny.yaml")


class _FullDiskFile:
    """A file that accepts ``budget`` more bytes (or characters), stores part of the next write, then fails."""

    def __init__(self, f, budget):
        self._f, self._budget = f, budget

    def write(self, data):
        if len(data) > self._budget:
            self._f.write(data[: self._budget])
            self._f.flush()
            self._budget = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


@pytest.fixture
def full_disk(monkeypatch):
    """Files opened by ``atomic_io`` get ``budget`` bytes of space (default 100)."""
    state = {"budget": 100}
    real = os.fdopen
    fake_os = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    fake_os.fdopen = lambda fd, *a, **k: _FullDiskFile(real(fd, *a, **k), state["budget"])
    monkeypatch.setattr(atomic_io, "os", fake_os)
    return state


def _leftovers(directory):
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def test_failed_write_keeps_the_old_file_and_names_the_path(tmp_path, full_disk):
    target = tmp_path / "eval_results.json"
    target.write_text('{"old": 1}')
    with pytest.raises(OSError) as e:
        atomic_write_bytes(str(target), json.dumps({"PQ": list(range(200))}).encode())
    assert e.value.errno == errno.ENOSPC and str(target) in str(e.value)
    assert target.read_text() == '{"old": 1}'
    assert not _leftovers(tmp_path)
    # a new file is not created at all
    with pytest.raises(OSError, match="config.yaml"):
        with atomic_open(tmp_path / "config.yaml", "w") as f:
            f.write("x: 1\n" * 100)
    assert os.listdir(tmp_path) == ["eval_results.json"]


def test_written_files_get_the_umask_mode_and_orphans_are_removed(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(str(tmp_path / "a.json"), b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640
    (tmp_path / "sub").mkdir()
    orphan = tmp_path / "sub" / ".model_0000009.pth.ab_cd123.tmp"
    orphan.write_bytes(b"half")
    kept = tmp_path / "notes.tmp"  # not a name atomic_open writes: left alone
    kept.write_text("mine")
    assert remove_orphaned_tmp_files(str(tmp_path)) == 1
    assert not orphan.exists() and kept.exists()


def test_checkpoint_on_full_disk_keeps_last_checkpoint(tmp_path, full_disk):
    from odise_ext.engine import AtomicCheckpointer

    ckpt = AtomicCheckpointer(torch.nn.Linear(64, 64), str(tmp_path))
    full_disk["budget"] = 10**9
    ckpt.save("model_0000001")
    full_disk["budget"] = 1000
    with pytest.raises(OSError, match="model_0000003.pth"):
        ckpt.save("model_0000003")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert torch.load(tmp_path / "model_0000001.pth", weights_only=True)["model"].keys() == {"weight", "bias"}


def test_metrics_json_append_is_rolled_back(tmp_path, monkeypatch):
    from detectron2.utils.events import EventStorage

    from odise_ext.engine import metrics_writer

    path = tmp_path / "metrics.json"
    writer = metrics_writer.AtomicJSONWriter(str(path))
    with EventStorage(0) as storage:
        storage.put_scalar("loss", 1.0, smoothing_hint=False)
        writer.write()
        good = path.read_bytes()
        storage.iter = 1
        storage.put_scalar("loss", 2.0, smoothing_hint=False)

        def half_write(fd, data):  # the disk takes 5 bytes, then is full
            os.write(fd, bytes(data[:5]))
            raise OSError(errno.ENOSPC, "No space left on device")

        fake_os = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
        fake_os.write = half_write
        monkeypatch.setattr(metrics_writer, "os", fake_os)
        with pytest.raises(OSError, match="metrics.json"):
            writer.write()
    writer.close()
    assert path.read_bytes() == good and json.loads(good)["loss"] == 1.0


def test_sem_seg_evaluator_predictions_on_full_disk(shapes_root, tmp_path, full_disk):
    """detectron2's SemSegEvaluator writes sem_seg_predictions.json through our evaluators."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from PIL import Image

    from odise_ext.engine.evaluators import build_evaluators

    name = "shapes_val_sem_seg"
    cfg = setup_cfg(TINY, [])
    evaluators = build_evaluators(cfg, name, str(tmp_path))
    d = DatasetCatalog.get(name)[0]
    num_classes = len(MetadataCatalog.get(name).stuff_classes)
    height, width = Image.open(d["sem_seg_file_name"]).size[::-1]
    evaluators.reset()
    logits = torch.rand(num_classes, height, width)
    evaluators.process([{"file_name": d["file_name"]}], [{"sem_seg": logits}])
    with pytest.raises(OSError) as e:
        evaluators.evaluate()
    assert e.value.errno == errno.ENOSPC and "sem_seg_predictions.json" in str(e.value)
    assert not (tmp_path / "sem_seg_predictions.json").exists() and not _leftovers(tmp_path)
    # with space, the same evaluation writes the whole file and returns the metrics
    full_disk["budget"] = 10**9
    res = evaluators.evaluate()
    assert "mIoU" in res["sem_seg"] and json.loads((tmp_path / "sem_seg_predictions.json").read_text())


def test_config_yaml_on_full_disk(tmp_path, full_disk):
    import train_net  # tools/train_net.py
    from detectron2.engine import default_argument_parser

    args = default_argument_parser().parse_args(["--config-file", TINY, "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(OSError, match="config.yaml"):
        train_net.setup(args)
    assert not (tmp_path / "config.yaml").exists() and not _leftovers(tmp_path)
    full_disk["budget"] = 10**9
    cfg = train_net.setup(args)
    assert (tmp_path / "config.yaml").read_text() == cfg.dump()
