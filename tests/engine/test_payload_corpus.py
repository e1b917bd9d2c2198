"""The payload corpus (``payloads.py``) through every reader of weights, index and config files:
nothing runs (no marker file), and each refusal names the file and the global / tag refused.
Legitimate files of every pickle protocol still read exactly what ``pickle.load`` reads."""
import collections
import logging
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch

from odise_ext.config import setup_cfg
from odise_ext.config.defaults import check_yaml_chain
from odise_ext.engine import AtomicCheckpointer, SafeCheckpointer
from odise_ext.utils.safe_load import (ALLOW_PICKLE_ENV, MAX_EXPANSION_ENV, UnsafeFileError, check_zip_expansion,
                                       read_torchscript_tensors, safe_pickle_load, safe_torch_load)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "datasets"))
TINY = os.path.join(ROOT, "configs/testing/odise_tiny.yaml")

from payloads import (legacy_checkpoint, loads_runs_marker, pickle_payloads, torchscript_archive,  # noqa: E402
                      yaml_payloads, zip_checkpoint)


def _refused(call, path, word):
    with pytest.raises(UnsafeFileError) as e:
        call()
    msg = str(e.value)
    assert "Refusing to read" in msg and os.path.basename(path) in msg and word in msg, msg
    assert ALLOW_PICKLE_ENV in msg, msg


def _plain_readers(tmp_path):
    """(name, reader of a .pkl path) for every entry point that reads a plain pickle."""
    import prepare_ade20k_full
    import prepare_refcoco

    def refcoco(path):
        base = tmp_path / "root" / "refcoco" / "refcoco"
        base.mkdir(parents=True, exist_ok=True)
        (base / "instances.json").write_text("{}")
        os.replace(path, base / "refs(unc).p")
        try:
            prepare_refcoco.main(["--root", str(tmp_path / "root"), "--datasets", "refcoco"])
        finally:
            os.replace(base / "refs(unc).p", path)

    return [
        ("safe_pickle_load", safe_pickle_load),
        ("MODEL.WEIGHTS .pkl (training init, --eval-only)", lambda p: AtomicCheckpointer(torch.nn.Linear(2, 2)).load(p)),
        ("Predictor / tools (SafeCheckpointer)", lambda p: SafeCheckpointer(torch.nn.Linear(2, 2)).load(p)),
        ("detectron2 DefaultPredictor (setup_cfg check)", lambda p: setup_cfg(TINY, ["MODEL.WEIGHTS", p])),
        ("prepare_ade20k_full", lambda p: prepare_ade20k_full.list_images(str(tmp_path), p)),
        ("prepare_refcoco", refcoco),  # names the file as it lies there: refs(unc).p
    ]


def test_every_pickle_payload_is_real_and_refused_by_every_plain_reader(tmp_path):
    marker = tmp_path / "marker"
    readers = _plain_readers(tmp_path)
    for name, (data, word) in pickle_payloads(marker).items():
        assert loads_runs_marker(data, marker), f"{name} is not a working payload"
        marker.unlink()
        path = str(tmp_path / f"{name}.pkl")
        with open(path, "wb") as f:
            f.write(data)
        for reader_name, read in readers:
            _refused(lambda: read(path), "refs(unc).p" if reader_name == "prepare_refcoco" else path, word)
            assert not marker.exists(), f"{name} ran through {reader_name}"


def test_payloads_inside_torch_files_refused_by_every_torch_reader(tmp_path):
    import convert_odise_checkpoint

    from odise_ext.odise.clip.open_clip_wrapper import _read_torch_or_torchscript
    from odise_ext.diffusion.sd_loading import read_state_dict
    from odise_ext.checkpoint import load_release_checkpoint

    marker = tmp_path / "marker"
    files = []
    for name, (data, word) in pickle_payloads(marker).items():
        if data.startswith(b"\x80\x02") and name != "persistent-id":  # torch.save's protocol: refused by its global
            zip_checkpoint(tmp_path / f"zip-{name}.pth", data)
            files.append((str(tmp_path / f"zip-{name}.pth"), word))
    zip_checkpoint(tmp_path / "zip-proto4.pth", pickle_payloads(marker)["numpy.dtypes.__builtins__.get"][0])
    files.append((str(tmp_path / "zip-proto4.pth"), "Unsupported operand"))  # STACK_GLOBAL: not torch's opcodes
    legacy_checkpoint(tmp_path / "legacy.pth", {"model": {"w": _Exec(marker)}})
    files.append((str(tmp_path / "legacy.pth"), "builtins.exec"))
    readers = [
        ("safe_torch_load", safe_torch_load),
        ("MODEL.WEIGHTS .pth", lambda p: AtomicCheckpointer(torch.nn.Linear(2, 2)).load(p)),
        ("MODEL.DIFFUSION.WEIGHTS single file", read_state_dict),
        ("MODEL.CLIP.WEIGHTS", _read_torch_or_torchscript),
        ("released VPD checkpoints", load_release_checkpoint),
    ]
    for path, word in files:
        for reader_name, read in readers:
            _refused(lambda: read(path), path, word)
            assert not marker.exists(), f"{path} ran through {reader_name}"
        with pytest.raises(SystemExit, match="Refusing to read"):
            convert_odise_checkpoint.main([path, str(tmp_path / "out.pth")])
        assert not marker.exists() and not (tmp_path / "out.pth").exists()


class _Exec:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_torchscript_archive_with_payload_refused(tmp_path):
    from odise_ext.odise.clip.open_clip_wrapper import _read_torch_or_torchscript

    marker = tmp_path / "marker"
    data, word = pickle_payloads(marker)["posix.system"]
    torchscript_archive(tmp_path / "clip.pt", data)
    for read in (read_torchscript_tensors, _read_torch_or_torchscript):
        _refused(lambda: read(str(tmp_path / "clip.pt")), "clip.pt", word)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["top", "base"])
def test_yaml_tags_refused_in_every_file_of_the_chain(tmp_path, where):
    marker = tmp_path / "marker"
    for name, (text, tag) in yaml_payloads(marker).items():
        bad = tmp_path / f"{name.replace('/', '_')}.yaml"
        bad.write_text(text if where == "top" else f"_BASE_: {TINY}\n" + text)
        top = bad
        if where == "base":
            top = tmp_path / f"top-{bad.name}"
            top.write_text(f"_BASE_: {bad.name}\nSOLVER:\n  MAX_ITER: 2\n")
        for check in (lambda: setup_cfg(str(top)), lambda: check_yaml_chain(str(top))):
            with pytest.raises(ValueError) as e:
                check()
            assert bad.name in str(e.value) and tag in str(e.value) and "YAML tag" in str(e.value), str(e.value)
        assert not marker.exists()


def test_base_cycle_named_in_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: [c.yaml]\n")
    (tmp_path / "c.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ValueError) as e:
        setup_cfg(str(tmp_path / "a.yaml"))
    msg = str(e.value)
    assert "\n" not in msg and "_BASE_ cycle" in msg, msg
    assert msg.index("a.yaml") < msg.index("b.yaml") < msg.index("c.yaml"), msg


def test_opt_in_reads_every_refused_kind_with_a_warning(tmp_path, monkeypatch, caplog):
    """The files are the user's own (trusted): with the opt-in they are read by full pickle."""
    marker = tmp_path / "marker"
    payloads = pickle_payloads(marker)
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    for name in ("posix.system", "numpy.dtypes.__builtins__.get", "INST"):
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(payloads[name][0])
        with caplog.at_level(logging.WARNING, logger="odise_ext.utils.safe_load"):
            safe_pickle_load(str(path))
        assert marker.exists() and path.name in caplog.text and ALLOW_PICKLE_ENV in caplog.text, name
        marker.unlink()
        caplog.clear()
    zip_checkpoint(tmp_path / "z.pth", payloads["posix.system"][0])
    safe_torch_load(str(tmp_path / "z.pth"))
    assert marker.exists()


def test_legitimate_pickles_of_every_protocol_read_as_pickle_reads_them(tmp_path):
    refs = [{"sent": "a dog", "id": 3, "neg": -5, "big": 2**40, "f": 1.5, "t": True, "n": None,
             "raw": b"\x00\xffab", "tu": (1, "x"), "u": "caf\u00e9"}]
    good = {"blobs": {"conv1_w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], np.int64),
                      "h": np.ones((2, 2), np.float16).T},
            "refs": refs, "same": refs[0], "od": collections.OrderedDict(a=1), "score": np.float64(0.5),
            "dtype": np.dtype("float16"), "c": 1 + 2j}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"good{protocol}.pkl"
        path.write_bytes(pickle.dumps(good, protocol=protocol))
        back, oracle = safe_pickle_load(str(path)), pickle.loads(path.read_bytes(), encoding="latin1")
        assert back["refs"] == oracle["refs"] and back["same"] is back["refs"][0], protocol
        for k, v in oracle["blobs"].items():
            assert back["blobs"][k].dtype == v.dtype and back["blobs"][k].shape == v.shape, (protocol, k)
            assert back["blobs"][k].tobytes() == v.tobytes(), (protocol, k)
        assert type(back["od"]) is collections.OrderedDict and back["od"] == oracle["od"]
        assert type(back["score"]) is np.float64 and back["score"] == 0.5 and back["dtype"] == np.float16
        assert back["c"] == 1 + 2j


def _bomb(path, nbytes):
    torch.save({"w": torch.zeros(1)}, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{os.path.splitext(os.path.basename(path))[0]}/data/zeros", b"\0" * nbytes)


def test_zip_bomb_refused_before_reading(tmp_path, monkeypatch):
    path = str(tmp_path / "bomb.pth")
    _bomb(path, 20 << 20)
    assert os.path.getsize(path) < 1 << 20
    for read in (safe_torch_load, lambda p: SafeCheckpointer(torch.nn.Linear(2, 2)).load(p)):
        with pytest.raises(ValueError) as e:
            read(path)
        assert "bomb.pth" in str(e.value) and MAX_EXPANSION_ENV in str(e.value) and "zip bomb" in str(e.value)
    check_zip_expansion(path, model_bytes=20 << 20)  # a model that large may need that many bytes
    monkeypatch.setenv(MAX_EXPANSION_ENV, "1000")
    assert torch.equal(safe_torch_load(path)["w"], torch.zeros(1))


def _resume(out):
    return AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(out)).resume_or_load("", resume=True)


def test_last_checkpoint_must_name_a_checkpoint_in_output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tag = out / "last_checkpoint"
    secret = tmp_path / "secret.txt"
    secret.write_text("root-password-line\n")
    cases = {"link": lambda: tag.symlink_to(secret), "dir": lambda: tag.mkdir(),
             "dotdot": lambda: tag.write_text("../secret.txt"), "abs": lambda: tag.write_text(str(secret)),
             "missing": lambda: tag.write_text("model_0000009.pth"), "binary": lambda: tag.write_bytes(b"\xff\xfe" * 8)}
    for name, plant in cases.items():
        plant()
        with pytest.raises(ValueError) as e:
            _resume(out)
        msg = str(e.value)
        assert "last_checkpoint" in msg and "root-password" not in msg and "--resume" in msg, (name, msg)
        os.rmdir(tag) if tag.is_dir() and not tag.is_symlink() else tag.unlink()
    SafeCheckpointer(torch.nn.Linear(2, 2))  # the good case: a saved checkpoint resumes
    AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(out)).save("model_0000001")
    assert _resume(out) == {}
    full = (out / "model_0000001.pth").read_bytes()
    (out / "model_0000001.pth").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError) as e:
        _resume(out)
    msg = str(e.value)
    assert "truncated" in msg and "model_0000001.pth" in msg and str(len(full) // 2) in msg and "previous" in msg, msg


@pytest.mark.slow
def test_model_entry_points_with_chain_payloads(shapes_root, tmp_path):
    """Predictor, tools/visualize_predictions.py, and --resume / --eval-only --resume from a planted
    last_checkpoint, with the protocol-4 numpy.dtypes chain (.pkl) and a posix.system zip (.pth)."""
    import train_net
    import visualize_predictions
    from detectron2.engine import default_argument_parser

    from odise_ext.engine.predictor import Predictor

    marker = tmp_path / "marker"
    payloads = pickle_payloads(marker)
    pkl = tmp_path / "chain.pkl"
    pkl.write_bytes(payloads["numpy.dtypes.__builtins__.get"][0])
    pth = tmp_path / "posix.pth"
    zip_checkpoint(pth, payloads["posix.system"][0])
    cfg = setup_cfg(TINY, ["MODEL.WEIGHTS", str(pth)])
    _refused(lambda: Predictor(cfg), str(pth), "posix.system")
    _refused(lambda: visualize_predictions.main(["--config-file", TINY, "--weights", str(pkl), "--dataset",
                                                 "shapes_val_panoptic_with_sem_seg", "--output", str(tmp_path / "vis")]),
             str(pkl), "numpy.dtypes.__builtins__.get")
    out = tmp_path / "out"
    out.mkdir()
    os.replace(pth, out / "model_0000001.pth")
    (out / "last_checkpoint").write_text("model_0000001.pth")
    for extra in ([], ["--eval-only"]):
        argv = ["--config-file", TINY, "--resume", *extra, "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2"]
        _refused(lambda: train_net.main(default_argument_parser().parse_args(argv)), "model_0000001.pth", "posix.system")
    assert not marker.exists()
