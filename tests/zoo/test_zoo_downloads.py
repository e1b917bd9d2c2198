"""Zoo names resolve over HTTP (a loopback server standing in for the release hosts): download,
checksum, conversion once, reuse, interrupted transfers, concurrent processes, offline errors,
and files that must not run code."""
import hashlib
import multiprocessing
import os
import socket

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.utils.file_io import PathManager

import odise_ext  # noqa: F401  (registers the zoo's PathManager handler)
from odise_ext.config import get_odise_cfg, setup_cfg
from odise_ext.utils.safe_load import UnsafeFileError
from odise_ext.zoo import ZooError, resolve
from odise_ext.zoo import convert as zoo_convert
from odise_ext.zoo.__main__ import main as zoo_main
from odise_ext.zoo.catalog import CLIP_L14_336, SD_V1_3
from odise_ext.zoo.download import DownloadError, download
from odise_ext.zoo.resolve import cache_paths, get_entry

from zoo_fixtures import ROOT, odise_release_bytes, server, set_catalog, vpd_release_bytes, zoo_cache  # noqa: F401

TINY_ODISE = os.path.join(ROOT, "configs/testing/odise_tiny.yaml")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def _entry(server, name, data, **extra):
    server.files["/" + name] = data
    return {"file_name": name, "urls": [server.url + "/" + name], "sha256": sha(data)[:8], **extra}


def test_resolve_downloads_verifies_converts_once_and_loads(server, zoo_cache, set_catalog, tmp_path, monkeypatch):
    data, src = odise_release_bytes(tmp_path)
    set_catalog({"odise://label_coco_50e": _entry(server, "odise_label_coco_50e-test.pth", data,
                                                  config="configs/testing/odise_tiny.yaml")})
    path = resolve("odise://label_coco_50e")
    original, converted = cache_paths(get_entry("odise://label_coco_50e"))
    assert path == converted and os.path.isfile(converted)
    assert open(original, "rb").read() == data  # the released file, as served, kept beside it
    assert len(server.gets("/odise_label_coco_50e-test.pth")) == 1

    # a second resolve (here, and through detectron2's PathManager) neither downloads nor converts
    mtime = os.stat(converted).st_mtime_ns
    monkeypatch.setattr(zoo_convert, "convert_release_file", lambda *a, **k: pytest.fail("converted again"))
    assert resolve("odise://label_coco_50e") == converted
    assert PathManager.get_local_path("odise://label_coco_50e") == converted
    assert os.stat(converted).st_mtime_ns == mtime and len(server.requests) == 1

    # DetectionCheckpointer accepts the name: the loaded model has the released model's weights
    cfg = setup_cfg(TINY_ODISE)
    torch.manual_seed(2)
    dst = build_model(cfg).eval()
    DetectionCheckpointer(dst).load("odise://label_coco_50e")
    ours, theirs = dst.state_dict(), src.state_dict()
    for k, v in theirs.items():
        if torch.is_tensor(v) and not k.startswith("criterion."):
            assert torch.equal(ours[k], v), k


def test_zoo_name_fills_the_base_weights_it_needs():
    cfg = setup_cfg(os.path.join(ROOT, "configs/odise_coco.yaml"), ["MODEL.WEIGHTS", "odise://label_coco_50e"])
    assert (cfg.MODEL.DIFFUSION.WEIGHTS, cfg.MODEL.CLIP.WEIGHTS) == (SD_V1_3, CLIP_L14_336)
    cfg = setup_cfg(os.path.join(ROOT, "configs/odise_coco.yaml"),
                    ["MODEL.WEIGHTS", "odise://label_coco_50e", "MODEL.DIFFUSION.WEIGHTS", "mine.ckpt"])
    assert cfg.MODEL.DIFFUSION.WEIGHTS == "mine.ckpt"  # an explicit value is kept
    with pytest.raises(KeyError, match="no model-zoo entry 'odise://nope'.*odise://label_coco_50e"):
        setup_cfg(os.path.join(ROOT, "configs/odise_coco.yaml"), ["MODEL.WEIGHTS", "odise://nope"])


def test_vpd_release_converts_with_its_format(server, zoo_cache, set_catalog, tmp_path):
    from odise_ext.checkpoint import convert_release_to_ours

    data, state = vpd_release_bytes(tmp_path)
    set_catalog({"vpd://nyu_depth": _entry(server, "vpd_depth_480x480.pth", data, check_release_shapes=False)})
    ckpt = torch.load(resolve("vpd://nyu_depth"), weights_only=True)
    assert ckpt["release_format"] == "vpd_depth"  # the entry's format, read by the VPD converter
    expected, _ = convert_release_to_ours(state, "vpd_depth", check_shapes=False)
    assert ckpt["model"].keys() == expected.keys()
    assert all(torch.equal(ckpt["model"][k], v) for k, v in expected.items())


def test_list_shows_what_is_cached(server, zoo_cache, set_catalog, tmp_path, capsys):
    data, _ = vpd_release_bytes(tmp_path)
    set_catalog({"vpd://nyu_depth": _entry(server, "vpd_depth_480x480.pth", data, check_release_shapes=False)})
    resolve("vpd://nyu_depth")
    assert zoo_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache: {zoo_cache}"
    rows = {line.split()[0]: line.split()[1] for line in lines[2:]}  # after the cache and header lines
    assert rows["vpd://nyu_depth"] == "converted" and rows["odise://label_coco_50e"] == "-"
    assert len(rows) == 10  # every released checkpoint of the four families


def test_checksum_mismatch_deletes_the_download_and_names_both(server, zoo_cache, monkeypatch):
    # a mirror serving another file under the real release name: the name's sha256 prefix catches it
    server.files["/odise_label_coco_50e-b67d2efc.pth"] = b"not the released file" * 100
    monkeypatch.setenv("ODISE_EXT_ZOO_URL_BASE", server.url)
    with pytest.raises(ZooError) as e:
        resolve("odise://label_coco_50e")
    msg = str(e.value)
    assert server.url + "/odise_label_coco_50e-b67d2efc.pth" in msg and "b67d2efc" in msg
    assert sha(b"not the released file" * 100) in msg
    folder = os.path.dirname(cache_paths(get_entry("odise://label_coco_50e"))[0])
    assert [f for f in os.listdir(folder) if not f.endswith(".lock")] == []  # nothing left to be taken for complete


def test_interrupted_download_resumes_and_never_leaves_a_complete_looking_file(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/f.bin"] = data
    target = str(tmp_path / "f.bin")
    server.drop["/f.bin"] = 100_000
    with pytest.raises(DownloadError, match="broke off 1 times"):
        download(server.url + "/f.bin", target, sha(data), attempts=1)
    assert not os.path.exists(target) and os.path.getsize(target + ".part") == 100_000
    assert download(server.url + "/f.bin", target, sha(data), attempts=1) == target  # the next run
    assert open(target, "rb").read() == data and not os.path.exists(target + ".part")
    assert server.requests[-1] == ("/f.bin", "bytes=100000-")  # resumed, not restarted

    # a server without Range support: the next attempt restarts, in the same call
    server.ranges, server.drop["/f.bin"] = False, 50_000
    os.remove(target)
    assert download(server.url + "/f.bin", target, sha(data)) == target
    assert open(target, "rb").read() == data


def _resolve_in_child(uri, queue):
    try:
        queue.put(resolve(uri))
    except BaseException as e:  # noqa: BLE001
        queue.put(f"error: {e}")


def test_two_processes_download_once(server, zoo_cache, set_catalog, tmp_path):
    data, _ = vpd_release_bytes(tmp_path)
    set_catalog({"vpd://nyu_depth": _entry(server, "vpd_depth_480x480.pth", data, check_release_shapes=False)})
    server.delay_s = 0.002  # a slow transfer, so that the second process arrives while the first downloads
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_resolve_in_child, args=("vpd://nyu_depth", queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    converted = cache_paths(get_entry("vpd://nyu_depth"))[1]
    assert results == [converted, converted]
    assert len(server.gets("/vpd_depth_480x480.pth")) == 1


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_with_nothing_cached_is_one_clear_error(zoo_cache, monkeypatch):
    url_base = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("ODISE_EXT_ZOO_URL_BASE", url_base)
    with pytest.raises(ZooError) as e:
        resolve("odise://label_coco_50e")
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)  # no chained traceback
    msg = str(e.value)
    original = cache_paths(get_entry("odise://label_coco_50e"))[0]
    assert f"{url_base}/odise_label_coco_50e-b67d2efc.pth" in msg and "cannot reach the server" in msg
    assert f"curl -L -C - -o {original} " in msg  # the manual download ...
    assert "tools/convert_odise_checkpoint.py" in msg and "configs/odise_coco.yaml" in msg  # ... and conversion


def test_entry_without_url_says_so(zoo_cache, set_catalog):
    set_catalog({"vpd://nyu_depth": {"urls": []}})
    with pytest.raises(ZooError, match="(?s)publish no download URL.*tools/convert_vpd_checkpoint.py.*--format vpd_depth"):
        resolve("vpd://nyu_depth")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling calls open(marker, "w"): creates the file
        return (open, (self.marker, "w"))


def test_a_payload_file_is_refused_and_never_runs(server, zoo_cache, set_catalog, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "payload.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, path)
    set_catalog({"odise://label_coco_50e": _entry(server, "payload.pth", path.read_bytes())})
    with pytest.raises(UnsafeFileError):
        resolve("odise://label_coco_50e")
    assert not marker.exists()
    assert not os.path.exists(cache_paths(get_entry("odise://label_coco_50e"))[1])  # nothing converted
