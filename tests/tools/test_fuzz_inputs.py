"""Fuzz table: bad inputs through every entry point, each row asserting its outcome.

Entry points: the image reader (``odise_ext.data.image_io``) and the predictor
(``odise_ext.engine.predictor.Predictor``, the tiny ODISE model built once), ``tools/demo.py``,
dataset loading for a run (``Trainer.build_test_loader`` / ``checked_dataset_dicts``), config
set-up (``setup_cfg``, as ``tools/train_net.py`` does), evaluation set-up (``build_evaluators``
with a test vocabulary) and weights files (``MODEL.WEIGHTS`` through ``tools/train_net.py`` and
the predictor). Each row is either ``OK`` (handled: the row's check says how) or an
``(exception type, message fragment)``.
"""
import json
import logging
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
TINY = os.path.join(ROOT, "configs/testing/odise_tiny.yaml")
OK = "ok"

from odise_ext.data.image_io import as_image_array  # noqa: E402


# ------------------------------------------------------------------------------------ images
def _png16(tmp, value=32896):
    p = tmp / "gray16.png"
    Image.fromarray(np.full((24, 40), value, np.uint16)).save(p)
    assert Image.open(p).mode.startswith("I")
    return str(p)


def _truncated_png(tmp):
    p = tmp / "cut.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:200])
    return str(p)


def _file(tmp, name, data):
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def _exif_rotated(tmp):
    p = tmp / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30 wide x 20 high, shown rotated 90 degrees clockwise: 20 wide x 30 high
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:, :16], stored[:, 16:] = (10, 20, 30), (200, 100, 50)  # left half dark: shown at the top
    Image.fromarray(stored).save(p, exif=exif, quality=95)
    return str(p)


def _exif_oracle(tmp, path):
    """Orientation 6 by its definition: the stored pixels (decoded without EXIF) turned 90 degrees clockwise."""
    stored = np.asarray(Image.open(path).convert("RGB"))
    assert stored.shape == (20, 30, 3)
    return np.ascontiguousarray(np.rot90(stored, k=-1)[..., ::-1])


def _pil(mode, size=(12, 8), value=None):
    img = Image.new(mode, size, value if value is not None else 0)
    return img


# (row id, input maker(tmp_path), expected): expected is (OK, (H, W), pixel [0, 0] BGR or None)
# or (exception type, message fragment)
IMAGE_ROWS = [
    ("uint8_hw3", lambda t: np.full((8, 12, 3), (1, 2, 3), np.uint8), (OK, (8, 12), (1, 2, 3))),
    ("gray_2d", lambda t: np.full((8, 12), 7, np.uint8), (OK, (8, 12), (7, 7, 7))),
    ("gray_hw1", lambda t: np.full((8, 12, 1), 9, np.uint8), (OK, (8, 12), (9, 9, 9))),
    ("bgra_alpha_dropped", lambda t: np.full((8, 12, 4), (1, 2, 3, 0), np.uint8), (OK, (8, 12), (1, 2, 3))),
    ("uint16_gray_scaled", lambda t: np.full((8, 12), 257 * 100, np.uint16), (OK, (8, 12), (100, 100, 100))),
    ("uint16_bgr_scaled", lambda t: np.full((8, 12, 3), 65535, np.uint16), (OK, (8, 12), (255, 255, 255))),
    ("int64_in_range", lambda t: np.full((8, 12, 3), 200, np.int64), (OK, (8, 12), (200, 200, 200))),
    ("float_0_255", lambda t: np.full((8, 12, 3), 99.6, np.float32), (OK, (8, 12), (100, 100, 100))),
    ("float_all_zero_black", lambda t: np.zeros((8, 12, 3), np.float64), (OK, (8, 12), (0, 0, 0))),
    ("float_0_1", lambda t: np.full((8, 12, 3), 0.5, np.float32), (ValueError, "values in [0, 1]")),
    ("float_nan", lambda t: np.full((8, 12, 3), np.nan, np.float32), (ValueError, "NaN")),
    ("float_negative", lambda t: np.full((8, 12, 3), -3.0), (ValueError, "outside 0..255")),
    ("int32_over_255", lambda t: np.full((8, 12, 3), 300, np.int32), (ValueError, "outside 0..255")),
    ("bool", lambda t: np.ones((8, 12), bool), (ValueError, "boolean")),
    ("complex", lambda t: np.ones((8, 12, 3), np.complex64), (TypeError, "dtype complex64")),
    ("empty_0x0", lambda t: np.zeros((0, 0), np.uint8), (ValueError, "non-empty")),
    ("empty_0x5x3", lambda t: np.zeros((0, 5, 3), np.uint8), (ValueError, "non-empty")),
    ("one_d", lambda t: np.zeros(10, np.uint8), (ValueError, "shape (10,)")),
    ("four_d", lambda t: np.zeros((1, 8, 12, 3), np.uint8), (ValueError, "shape (1, 8, 12, 3)")),
    ("two_channels", lambda t: np.zeros((8, 12, 2), np.uint8), (ValueError, "C in 1, 3, 4")),
    ("chw_layout", lambda t: np.zeros((3, 8, 12), np.uint8), (ValueError, "C in 1, 3, 4")),
    ("none_from_cv2", lambda t: None, (ValueError, "is None")),
    ("torch_tensor", lambda t: torch.zeros(3, 8, 12, dtype=torch.uint8), (TypeError, "torch.Tensor")),
    ("python_list", lambda t: [[0, 1], [2, 3]], (TypeError, "builtins.list")),
    ("strip_20x10000", lambda t: np.full((20, 10000, 3), 50, np.uint8), (OK, (20, 10000), (50, 50, 50))),
    ("strip_10000x20", lambda t: np.full((10000, 20, 3), 50, np.uint8), (OK, (10000, 20), (50, 50, 50))),
    ("one_pixel", lambda t: np.full((1, 1, 3), 5, np.uint8), (OK, (1, 1), (5, 5, 5))),
    ("pil_rgb_to_bgr", lambda t: _pil("RGB", value=(1, 2, 3)), (OK, (8, 12), (3, 2, 1))),
    ("pil_gray", lambda t: _pil("L", value=77), (OK, (8, 12), (77, 77, 77))),
    ("pil_16bit", lambda t: _pil("I;16", value=257 * 10), (OK, (8, 12), (10, 10, 10))),
    ("pil_palette", lambda t: _pil("P", value=0), (OK, (8, 12), None)),
    ("pil_rgba", lambda t: _pil("RGBA", value=(1, 2, 3, 0)), (OK, (8, 12), (3, 2, 1))),
    ("pil_bilevel", lambda t: _pil("1", value=1), (OK, (8, 12), (255, 255, 255))),
    ("pil_float_0_1", lambda t: _pil("F", value=0.5), (ValueError, "values in [0, 1]")),
    ("pil_empty", lambda t: Image.new("RGB", (0, 0)), (ValueError, "is empty")),
    ("path_png16", lambda t: _png16(t), (OK, (24, 40), (128, 128, 128))),
    ("path_exif_rotated", lambda t: _exif_rotated(t), (OK, (30, 20), None)),
    ("path_missing", lambda t: str(t / "nope.jpg"), (FileNotFoundError, "nope.jpg' does not exist")),
    ("path_directory", lambda t: str(t), (IsADirectoryError, "is a directory")),
    ("path_text_file", lambda t: _file(t, "notes.jpg", b"hello, not an image\n"), (ValueError, "not an image file")),
    ("path_empty_file", lambda t: _file(t, "empty.png", b""), (ValueError, "empty.png")),
    ("path_truncated_png", lambda t: _truncated_png(t), (ValueError, "cannot be decoded")),
    ("pathlib_path", lambda t: t / os.path.basename(_png16(t)), (OK, (24, 40), (128, 128, 128))),
]


# uint8 BGR arrays each accepted row must read as, where not a single colour (OK, (H, W), BGR)
ORACLES = {
    "pil_palette": lambda t, img: np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1]),  # PIL's palette
    "path_exif_rotated": _exif_oracle,
}


def _oracle(row_id, expected, tmp, made):
    """What the row's input is by definition, as the uint8 BGR [H, W, 3] array the model sees."""
    if row_id in ORACLES:
        return ORACLES[row_id](tmp, made)
    return np.full((*expected[1], 3), expected[2], np.uint8)


def _assert_outcome(run, expected):
    if expected[0] == OK:
        return run()
    exc, fragment = expected
    with pytest.raises(exc) as info:
        run()
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"
    return None


@pytest.mark.parametrize("row_id, make, expected", IMAGE_ROWS, ids=[r[0] for r in IMAGE_ROWS])
def test_image_reader(row_id, make, expected, tmp_path):
    made = make(tmp_path)
    out = _assert_outcome(lambda: as_image_array(made, format="BGR"), expected)
    if out is not None:
        assert out.dtype == np.uint8 and out.shape == (*expected[1], 3) and out.flags["C_CONTIGUOUS"]
        if expected[2] is not None:
            assert tuple(out[0, 0]) == expected[2]
        assert np.array_equal(out, _oracle(row_id, expected, tmp_path, made)), row_id  # every pixel


@pytest.fixture(scope="module")
def predictor(shapes_root):
    from odise_ext.config import setup_cfg
    from odise_ext.engine.predictor import Predictor

    torch.manual_seed(0)
    return Predictor(setup_cfg(TINY, ["MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False"]))


# the predictor runs the model on every accepted input except the big strips' twins
_PREDICTOR_ROWS = [r for r in IMAGE_ROWS if r[0] not in ("int64_in_range", "float_all_zero_black", "pil_bilevel")]


@pytest.mark.parametrize("row_id, make, expected", _PREDICTOR_ROWS, ids=[r[0] for r in _PREDICTOR_ROWS])
def test_predictor(row_id, make, expected, predictor, tmp_path):
    """Each accepted input predicts exactly what its definition does: a grey image what its three
    equal channels do, 16-bit what value / 257 in 8 bits does, RGBA / PIL / a path what the BGR
    array does, an EXIF-rotated JPEG what its stored pixels turned clockwise do."""
    made = make(tmp_path)
    out = _assert_outcome(lambda: predictor(made), expected)
    if out is not None:  # outputs at the input's resolution, whatever the aspect ratio
        assert tuple(out["panoptic_seg"][0].shape) == expected[1]
        assert tuple(out["sem_seg"].shape[1:]) == expected[1]
        oracle = predictor(_oracle(row_id, expected, tmp_path, made))
        assert torch.equal(out["sem_seg"], oracle["sem_seg"]), row_id
        assert torch.equal(out["panoptic_seg"][0], oracle["panoptic_seg"][0]), row_id
        assert out["panoptic_seg"][1] == oracle["panoptic_seg"][1], row_id


# --------------------------------------------------------------------------------- tools/demo.py
@pytest.fixture
def demo(predictor, monkeypatch):
    import demo as demo_module

    from odise_ext.odise.hooks import ODISEDemo

    vocab = predictor.model.test_vocabulary
    monkeypatch.setattr(ODISEDemo, "build_predictor", lambda self: predictor)  # one model for all rows
    yield demo_module
    predictor.model.set_test_vocabulary(vocab)


def _demo_outcome(demo, tmp_path, inputs, extra=()):
    out = tmp_path / "drawn.png"
    demo.main(["--config-file", TINY, "--input", *inputs, "--output", str(out), *extra])
    return np.asarray(Image.open(out).convert("RGB"))


DEMO_ROWS = [
    ("png16_read_scaled", lambda t: [_png16(t, 257 * 60)], (), (OK,)),
    ("missing_file", lambda t: [str(t / "nope.jpg")], (), (SystemExit, "nope.jpg' does not exist")),
    # a folder is read for its images (issue 21); one without images is named
    ("directory", lambda t: [str(t)], (), (SystemExit, "no image matches")),
    ("text_file", lambda t: [_file(t, "a.jpg", b"text")], (), (SystemExit, "not an image file")),
    ("truncated_png", lambda t: [_truncated_png(t)], (), (SystemExit, "cannot be decoded")),
    ("things_not_in_vocab", lambda t: [_png16(t)], ("--vocab", "circle;sky", "--things", "circle;dog"),
     (SystemExit, "['dog'] are not in the vocabulary")),
    ("things_without_vocab", lambda t: [_png16(t)], ("--things", "circle"), (SystemExit, "give --vocab too")),
    ("empty_vocab", lambda t: [_png16(t)], ("--vocab", ";"), (SystemExit, "holds no class name")),
    ("things_synonym_ok", lambda t: [_png16(t)], ("--vocab", "circle,disk;sky", "--things", "disk"), (OK,)),
]


@pytest.mark.parametrize("make, extra, expected", [r[1:] for r in DEMO_ROWS], ids=[r[0] for r in DEMO_ROWS])
def test_demo(make, extra, expected, demo, tmp_path):
    drawn = _assert_outcome(lambda: _demo_outcome(demo, tmp_path, make(tmp_path), extra), expected)
    if drawn is not None:
        assert drawn.shape == (13 * 24, 13 * 40, 3)  # enlarged x13 for display: >= 512 px wide
        # a 16-bit value of 257 * 60 is gray 60, not white: some pixel stays dark (a colour blended
        # over a white image keeps every channel >= 127, whatever the random model predicts)
        assert (drawn.max(axis=2) < 100).any()


# ----------------------------------------------------------------------------- dataset loading
DATASET = "shapes_val_panoptic_with_sem_seg"


@pytest.fixture(scope="module")
def cfg_files(shapes_root):
    from odise_ext.config import setup_cfg

    return setup_cfg(TINY, [])


def _copy_val(shapes_root, dst):
    ann = shapes_root / "annotations"
    shutil.copytree(ann / "panoptic_val", dst / "pan")
    shutil.copytree(ann / "panoptic_semseg_val", dst / "sem")
    info = json.loads((ann / "panoptic_val.json").read_text())
    return info


def _shift_pngs(d, info):
    names = [a["file_name"] for a in info["annotations"]]
    data = [(d / "pan" / n).read_bytes() for n in names]
    for n, b in zip(names, data[1:] + data[:1]):
        (d / "pan" / n).write_bytes(b)


def _resize(path, factor=2):
    img = Image.open(path)
    img.resize((img.width // factor, img.height // factor), Image.NEAREST).save(path)


def _void_png(d, info, i=0):
    path = d / "pan" / info["annotations"][i]["file_name"]
    Image.fromarray(np.zeros_like(np.asarray(Image.open(path).convert("RGB")))).save(path)


def _sem_label_250(d, info, i=2):
    path = d / "sem" / ANN(info, i)["file_name"]
    labels = np.array(Image.open(path))
    labels[0, 0] = 250  # 9 classes, ignore 255
    Image.fromarray(labels).save(path)


ANN = lambda info, i=0: info["annotations"][i]  # noqa: E731
ANNOTATION_ROWS = [
    ("shifted_pngs", _shift_pngs, {}, (ValueError, "does not match its segments_info")),
    ("shifted_pngs_files_level_misses_it", _shift_pngs, {"DATA.CHECK_TEST_ANNOTATIONS": "files"}, (OK, 24)),
    ("empty_segments_info", lambda d, i: ANN(i).update(segments_info=[]), {},
     (ValueError, "does not match its segments_info")),
    ("empty_segments_info_files_level", lambda d, i: ANN(i).update(segments_info=[]),
     {"DATA.CHECK_TEST_ANNOTATIONS": "files"}, (ValueError, "does not match its segments_info")),
    ("empty_segments_info_void_png", lambda d, i: (ANN(i).update(segments_info=[]), _void_png(d, i)), {},
     (OK, 24)),
    ("segment_id_absent_from_png", lambda d, i: ANN(i)["segments_info"][0].update(id=999999), {},
     (ValueError, "ids [999999] are not in the PNG")),
    ("missing_png", lambda d, i: os.remove(d / "pan" / ANN(i, 5)["file_name"]), {},
     (ValueError, "pan_seg_file_name missing")),
    ("garbage_png", lambda d, i: (d / "pan" / ANN(i, 3)["file_name"]).write_bytes(b"\x00garbage"), {},
     (ValueError, "pan_seg_file_name is not a readable image")),
    ("wrong_size_png", lambda d, i: _resize(d / "pan" / ANN(i, 2)["file_name"]), {},
     (ValueError, "is 64x64, its image")),
    ("wrong_size_sem_seg", lambda d, i: _resize(d / "sem" / ANN(i, 2)["file_name"]), {},
     (ValueError, "sem_seg_file_name")),
    ("image_missing", lambda d, i: ANN(i, 7).update(file_name="missing_000.png"), {},
     (ValueError, "file_name missing")),
    ("duplicate_segment_ids", lambda d, i: ANN(i)["segments_info"].append(dict(ANN(i)["segments_info"][0])), {},
     (ValueError, "segments_info ids repeat")),
    ("category_not_in_categories_list", lambda d, i: i.update(categories=i["categories"][1:]), {},
     (ValueError, "is not in the 'categories' list")),
    ("unknown_category_id", lambda d, i: ANN(i)["segments_info"][0].update(category_id=4242), {},
     (ValueError, "Unknown category_id 4242")),
    ("annotation_listed_twice", lambda d, i: i["annotations"].append(json.loads(json.dumps(ANN(i, 3)))), {},
     (ValueError, "annotations #3 and #24 have the same image_id")),
    ("image_id_twice", lambda d, i: ANN(i, 5).update(image_id=ANN(i, 1)["image_id"]), {},
     (ValueError, "annotations #1 and #5 have the same image_id")),
    ("missing_segments_info_key", lambda d, i: ANN(i, 2).pop("segments_info"), {},
     (ValueError, "lacks the key(s) ['segments_info']")),
    ("missing_file_name_key", lambda d, i: ANN(i, 2).pop("file_name"), {},
     (ValueError, "lacks the key(s) ['file_name']")),
    ("sem_label_outside_classes", _sem_label_250, {}, (ValueError, "holds label values [250] outside 0..8")),
    ("no_annotations", lambda d, i: i.update(annotations=[]), {}, (ValueError, "No annotations")),
    ("json_without_annotations_key", lambda d, i: i.pop("annotations"), {}, (ValueError, "missing key")),
    ("malformed_json", "{not json", {}, (ValueError, "is not valid JSON")),
    ("truncated_json", lambda text: text[: len(text) // 2], {}, (ValueError, "is not valid JSON")),
    ("check_level_none_passes_anything", lambda d, i: os.remove(d / "pan" / ANN(i, 5)["file_name"]),
     {"DATA.CHECK_TEST_ANNOTATIONS": "none"}, (OK, 24)),
]


def _register_variant(shapes_root, tmp_path, row_id, mutate):
    from odise_ext.data.datasets.panoptic_sem_seg import register_panoptic_with_sem_seg
    from odise_ext.data.datasets.register_shapes import get_shapes_panoptic_metadata

    info = _copy_val(shapes_root, tmp_path)
    json_path = tmp_path / "panoptic.json"
    text = json.dumps(info)
    if isinstance(mutate, str):
        text = mutate
    elif getattr(mutate, "__code__", None) and mutate.__code__.co_argcount == 1:
        text = mutate(text)
    else:
        mutate(tmp_path, info)
        text = json.dumps(info)
    json_path.write_text(text)
    name = f"fuzz_{row_id}_{tmp_path.name}"
    register_panoptic_with_sem_seg(name, get_shapes_panoptic_metadata(), str(shapes_root / "images" / "val"),
                                   str(tmp_path / "pan"), str(json_path), str(tmp_path / "sem"))
    return name, str(json_path)


@pytest.mark.parametrize("mutate, opts, expected", [r[1:] for r in ANNOTATION_ROWS], ids=[r[0] for r in ANNOTATION_ROWS])
def test_dataset_loading_for_evaluation(mutate, opts, expected, shapes_root, cfg_files, tmp_path):
    from odise_ext.engine import Trainer

    name, json_path = _register_variant(shapes_root, tmp_path, "eval", mutate)
    cfg = cfg_files.clone()
    cfg.defrost()
    for k, v in opts.items():
        cfg.merge_from_list([k, v])
    if expected[0] == OK:
        loader = Trainer.build_test_loader(cfg, name)
        assert len(loader.dataset) == expected[1]
        return
    with pytest.raises(expected[0]) as info:
        Trainer.build_test_loader(cfg, name)
    assert expected[1] in str(info.value)
    if "JSON" in expected[1]:
        assert json_path in str(info.value)  # the file is named


def test_test_set_is_checked_once_per_process_unless_its_records_change(shapes_root, cfg_files, tmp_path, monkeypatch):
    """detectron2 rebuilds the test loader at each periodic evaluation: a test set that passed is
    not decoded again, but one whose records changed is checked again."""
    from odise_ext.data import validation
    from odise_ext.engine import Trainer

    calls = []
    check = validation.check_record
    monkeypatch.setattr(validation, "check_record", lambda d, level: calls.append(d) or check(d, level))
    name, json_path = _register_variant(shapes_root, tmp_path, "memo", lambda d, i: None)
    assert len(Trainer.build_test_loader(cfg_files, name).dataset) == 24 and len(calls) == 24
    assert len(Trainer.build_test_loader(cfg_files, name).dataset) == 24 and len(calls) == 24
    # the loader re-reads the JSON: records that changed are checked again
    info = json.loads(open(json_path).read())
    ANN(info)["segments_info"].append(dict(ANN(info)["segments_info"][0]))
    with open(json_path, "w") as f:
        json.dump(info, f)
    with pytest.raises(ValueError, match="segments_info ids repeat"):
        Trainer.build_test_loader(cfg_files, name)
    assert len(calls) > 24


@pytest.mark.parametrize("skip, expected", [(True, (OK, 23)), (False, (ValueError, "1 of 24 records"))],
                         ids=["train_skips_and_counts", "train_refuses_by_default"])
def test_dataset_loading_for_training(skip, expected, shapes_root, cfg_files, tmp_path):
    from odise_ext.data.validation import checked_dataset_dicts

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("odise_ext.data.validation").addHandler(handler)

    name, _ = _register_variant(shapes_root, tmp_path, "train",
                                lambda d, i: os.remove(d / "pan" / ANN(i, 5)["file_name"]))
    cfg = cfg_files.clone()
    cfg.defrost()
    cfg.DATA.SKIP_BAD_TRAIN_ANNOTATIONS = skip
    try:
        out = _assert_outcome(lambda: checked_dataset_dicts(cfg, name, is_train=True), expected)
    finally:
        logging.getLogger("odise_ext.data.validation").removeHandler(handler)
    if out is not None:
        assert len(out) == expected[1]
        assert any("skipped 1 of 24 records" in r.getMessage() for r in records)


def _png_narratives():
    from detectron2.data import DatasetCatalog

    return [dict(d, phrases=[dict(p) for p in d["phrases"]]) for d in DatasetCatalog.get("png_shapes_val")]


def _depth():
    from detectron2.data import DatasetCatalog

    return [dict(d) for d in DatasetCatalog.get("shapes_val_depth")]


def _refer():
    from detectron2.data import DatasetCatalog

    return [dict(d) for d in DatasetCatalog.get("shapes_val_refexp")]


def _small_png(tmp):
    p = tmp / "small.png"
    Image.new("I;16", (10, 10)).save(p)
    return str(p)


# (row id, dicts loader, edit(dicts, tmp), level, expected)
INDEX_ROWS = [
    ("png_narratives_clean", _png_narratives, lambda ds, t: None, "full", OK),
    ("png_phrase_segment_absent", _png_narratives, lambda ds, t: ds[0]["phrases"][0].update(segment_ids=[424242]),
     "full", (ValueError, "segment ids [424242] are not in")),
    ("png_panoptic_png_missing", _png_narratives, lambda ds, t: ds[1].update(pan_seg_file_name=str(t / "x.png")),
     "files", (ValueError, "pan_seg_file_name missing")),
    ("depth_clean", _depth, lambda ds, t: None, "files", OK),
    ("depth_map_missing", _depth, lambda ds, t: ds[2].update(depth_file_name=str(t / "d.png")),
     "files", (ValueError, "depth_file_name missing")),
    ("depth_map_wrong_size", _depth, lambda ds, t: ds[2].update(depth_file_name=_small_png(t)),
     "files", (ValueError, "depth_file_name")),
    ("depth_height_width_wrong", _depth, lambda ds, t: ds[0].update(height=99),
     "files", (ValueError, "the annotation says 128x99")),
    ("refer_clean", _refer, lambda ds, t: None, "files", OK),
    ("refer_image_missing", _refer, lambda ds, t: ds[3].update(file_name=str(t / "gone.jpg")),
     "files", (ValueError, "file_name missing")),
]


@pytest.mark.parametrize("load, edit, level, expected", [r[1:] for r in INDEX_ROWS], ids=[r[0] for r in INDEX_ROWS])
def test_index_checks(load, edit, level, expected, shapes_root, tmp_path):
    from odise_ext.data.validation import check_dataset_dicts

    dicts = load()
    edit(dicts, tmp_path)
    out = _assert_outcome(lambda: check_dataset_dicts(dicts, "index", level=level, skip_bad=False),
                          expected if expected != OK else (OK,))
    if out is not None:
        assert len(out) == len(dicts)


def test_png_narratives_json_malformed_is_named(shapes_root, tmp_path):
    from odise_ext.data.datasets.register_png import load_png_narratives

    bad = tmp_path / "png_narratives.json"
    bad.write_text('[{"image_id": ')
    ann = shapes_root / "annotations"
    with pytest.raises(ValueError, match="png_narratives.json is not valid JSON"):
        load_png_narratives(bad, ann / "panoptic_val.json", ann / "panoptic_val", shapes_root / "images" / "val")


# ---------------------------------------------------------------------------- configs
def _yaml(tmp, text):
    p = tmp / "c.yaml"
    p.write_text(text)
    return str(p)


def _base(tmp, base, name="top.yaml"):
    """A config file ``name`` whose _BASE_ is ``base`` (its path)."""
    p = tmp / name
    p.write_text(f"_BASE_: {base}\n")
    return str(p)


CONFIG_ROWS = [
    ("missing_file", lambda t: str(t / "none.yaml"), [], (FileNotFoundError, "does not exist")),
    ("empty_file", lambda t: _yaml(t, ""), [], (ValueError, "is empty")),
    ("not_yaml", lambda t: _yaml(t, "MODEL: [\n"), [], (ValueError, "is not valid YAML")),
    ("yaml_list", lambda t: _yaml(t, "- a\n- b\n"), [], (ValueError, "mapping of config keys, not a list")),
    ("unknown_key_in_file", lambda t: _yaml(t, f"_BASE_: {TINY}\nMODEL:\n  NOT_A_KEY: 1\n"), [],
     (KeyError, "MODEL.NOT_A_KEY")),
    ("unknown_key_in_opts", lambda t: TINY, ["MODEL.NOT_A_KEY", "1"], (KeyError, "MODEL.NOT_A_KEY")),
    ("odd_opts", lambda t: TINY, ["SOLVER.BASE_LR"], (ValueError, "'SOLVER.BASE_LR' has no value")),
    ("wrong_type", lambda t: TINY, ["SOLVER.BASE_LR", "fast"], (ValueError, "SOLVER.BASE_LR")),
    ("bad_check_level", lambda t: TINY, ["DATA.CHECK_TEST_ANNOTATIONS", "some"],
     (ValueError, "DATA.CHECK_TEST_ANNOTATIONS = 'some' must be one of")),
    ("yaml_python_tag", lambda t: _yaml(t, "SEED: !!python/object/apply:os.getpid []\n"), [],
     (ValueError, "uses the YAML tag 'tag:yaml.org,2002:python/object/apply:os.getpid'")),
    ("yaml_python_tag_in_base", lambda t: (_yaml(t, "SEED: !!python/name:os.getpid\n"), str(_base(t, "c.yaml")))[1], [],
     (ValueError, "c.yaml uses the YAML tag 'tag:yaml.org,2002:python/name:os.getpid'")),
    ("base_cycle", lambda t: (_base(t, "top.yaml", name="c.yaml"), _base(t, "c.yaml", name="top.yaml"))[0], [],
     (ValueError, "_BASE_ cycle")),
    ("valid", lambda t: TINY, ["DATA.CHECK_TRAIN_ANNOTATIONS", "full"], (OK,)),
]


@pytest.mark.parametrize("make, opts, expected", [r[1:] for r in CONFIG_ROWS], ids=[r[0] for r in CONFIG_ROWS])
def test_config_setup(make, opts, expected, tmp_path):
    from odise_ext.config import setup_cfg

    cfg = _assert_outcome(lambda: setup_cfg(make(tmp_path), opts), expected)
    if cfg is not None:
        assert cfg.DATA.CHECK_TRAIN_ANNOTATIONS == "full"


# ------------------------------------------------------------------------- evaluation set-up
NINE = "circle;square;triangle;ring;star;sky;grass;water;sand"
EVAL_ROWS = [
    ("own_classes", NINE, True, (OK, "plain")),
    ("permuted", "sand;sky;circle;star;square;ring;grass;water;triangle", True, (OK, "remapped")),
    ("superset", NINE + ";tree;cloud", True, (OK, "remapped")),
    ("subset", "circle;square;sky", True, (ValueError, "lacks 6 of the 9 classes")),
    ("two_names_one_class", NINE + ";Circle,disk", True, (ValueError, "both name the dataset class 'circle'")),
    ("all_things", NINE, False, (ValueError, "thing/stuff flags")),
]


@pytest.mark.parametrize("text, dataset_things, expected", [r[1:] for r in EVAL_ROWS], ids=[r[0] for r in EVAL_ROWS])
def test_evaluation_setup(text, dataset_things, expected, cfg_files, tmp_path):
    from detectron2.data import MetadataCatalog

    from odise_ext.engine.evaluators import build_evaluators
    from odise_ext.odise.vocabulary_remap import VocabularyRemapEvaluator, vocabulary_evaluators
    from odise_ext.odise.open_vocab.vocabulary import dataset_vocabulary, parse_vocabulary

    vocab = parse_vocabulary(text)
    if dataset_things:
        vocab = vocab.with_things_from(dataset_vocabulary(MetadataCatalog.get(DATASET)))
    # what ODISE's prepare_evaluators hook does with its test vocabulary
    ev = _assert_outcome(lambda: vocabulary_evaluators(
        build_evaluators(cfg_files, DATASET, str(tmp_path))._evaluators, vocab, MetadataCatalog.get(DATASET)), expected)
    if ev is not None:
        wrapped = [isinstance(e, VocabularyRemapEvaluator) for e in ev]
        assert wrapped == [expected[1] == "remapped"] * 3


# ------------------------------------------------------------------------------ weights files
def _zip_checkpoint(tmp, cut=False):
    p = tmp / "model.pth"
    torch.save({"model": {"w": torch.zeros(1000)}}, p)
    if cut:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return str(p)


def _safetensors(tmp, cut=False):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    data = len(header).to_bytes(8, "little") + header + bytes(16)
    return _file(tmp, "m.safetensors", data[:-8] if cut else data)


WEIGHTS_ROWS = [
    ("missing", lambda t: str(t / "model.pth"), (FileNotFoundError, "model.pth does not exist")),
    ("directory", lambda t: str(t), (IsADirectoryError, "is a directory")),
    ("empty", lambda t: _file(t, "model.pth", b""), (ValueError, "is empty (0 bytes)")),
    ("truncated_zip", lambda t: _zip_checkpoint(t, cut=True), (ValueError, "damaged or truncated")),
    ("garbage", lambda t: _file(t, "model.pth", bytes(range(7, 200))), (ValueError, "not a checkpoint")),
    ("png_image", lambda t: _png16(t), (ValueError, "is a PNG image")),
    ("json_text", lambda t: _file(t, "model.pth", b'{"model": 1}'), (ValueError, "not a checkpoint: text")),
    ("truncated_safetensors", lambda t: _safetensors(t, cut=True), (ValueError, "truncated")),
    ("safetensors_ok", lambda t: _safetensors(t), (OK,)),
    ("torch_zip_ok", lambda t: _zip_checkpoint(t), (OK,)),
    ("pkl_protocol_0_ok", lambda t: _file(t, "model.pkl", pickle.dumps({"model": {}}, protocol=0)), (OK,)),
    ("pkl_protocol_2_ok", lambda t: _file(t, "model.pkl", pickle.dumps({"model": {}}, protocol=2)), (OK,)),
]


@pytest.mark.parametrize("make, expected", [r[1:] for r in WEIGHTS_ROWS], ids=[r[0] for r in WEIGHTS_ROWS])
def test_weights_file(make, expected, tmp_path):
    from odise_ext.engine.weights_file import check_weights_file

    path = make(tmp_path)
    _assert_outcome(lambda: check_weights_file(path), expected)
    if expected[0] != OK:
        with pytest.raises(expected[0], match="MODEL.WEIGHTS="):
            check_weights_file(path)


_BAD_WEIGHTS = [r for r in WEIGHTS_ROWS if r[2][0] != OK]


@pytest.mark.parametrize("make, expected", [r[1:] for r in _BAD_WEIGHTS], ids=[r[0] for r in _BAD_WEIGHTS])
def test_weights_through_train_net_and_predictor(make, expected, shapes_root, tmp_path, monkeypatch):
    """Refused before any model is built (building would take minutes at full size)."""
    import train_net

    from odise_ext.config import setup_cfg
    from odise_ext.engine.predictor import Predictor

    path = make(tmp_path)
    built = []
    monkeypatch.setattr("odise_ext.engine.Trainer.build_model", classmethod(lambda cls, cfg: built.append(1)))
    _assert_outcome(lambda: train_net.cli(["--config-file", TINY, "--eval-only", "MODEL.WEIGHTS", path,
                                           "OUTPUT_DIR", str(tmp_path / "out")]), expected)
    _assert_outcome(lambda: Predictor(setup_cfg(TINY, ["MODEL.WEIGHTS", path])), expected)
    assert built == []


def test_default_predictor_warns_on_float_image_in_0_1(predictor):
    """detectron2's own DefaultPredictor cannot be made to refuse: ODISE logs a warning instead."""
    from detectron2.engine import DefaultPredictor

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("odise_ext.odise.meta_arch")
    logger.addHandler(handler)
    try:
        DefaultPredictor.__call__(predictor, np.full((16, 16, 3), 0.5, np.float32))
        DefaultPredictor.__call__(predictor, np.zeros((16, 16, 3), np.float32))  # black: no warning
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1 and "values are all in (0, 1]" in records[0].getMessage()
