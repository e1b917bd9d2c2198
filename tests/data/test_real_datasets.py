"""Real-benchmark support: class lists, registration, and each ``datasets/prepare_*.py`` script on
tiny fixtures written in the official formats, read back through the registered loaders.

Expected values come from the datasets' definitions (written out here by hand), not from the code
under test.
"""
import importlib.util
import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from PIL import Image
from pycocotools import mask as mask_util

from odise_ext.data.datasets.categories import (
    ADE20K_150_CATEGORIES,
    ADE20K_847_CATEGORIES,
    ADE20K_INSTANCE_TO_SEMANTIC,
    COCO_PANOPTIC_SYNONYMS,
    PASCAL_CONTEXT_59_CATEGORIES,
    PASCAL_CONTEXT_459_CATEGORIES,
    PASCAL_VOC_21_CATEGORIES,
)
from odise_ext.data.datasets.register_real import REAL_DATASET_NAMES, register_all_real
from odise_ext.engine.evaluators import EVALUATOR_REGISTRY

REPO = Path(__file__).resolve().parents[2]


def _script(name):
    """Import ``datasets/<name>.py`` (not a package) as a module."""
    key = f"_prepare_script_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "datasets" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


def _run(name, root, *args):
    return _script(name).main(["--root", str(root), "--splits", "val", "--workers", "1", *args])


def _unregister_real():
    for name in REAL_DATASET_NAMES:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)


@pytest.fixture
def clean_catalog():
    """Each test registers its own root; restore odise_ext's registrations afterwards."""
    before = {MetadataCatalog.get(n).get("dataset_root", None) for n in REAL_DATASET_NAMES
              if n in DatasetCatalog.list()} - {None}
    _unregister_real()
    yield
    _unregister_real()
    for root in before:
        register_all_real(root)


def _write_jpg(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _write_png(path, array, palette=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array.astype(np.uint8))
    if palette is not None:
        im = im.convert("P")
        im.putpalette(palette)
    im.save(path)


def _id_to_rgb(ids):
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def _rgb_to_id(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


# --------------------------------------------------------------------------- class lists


def test_class_list_sizes_and_ade_things():
    assert len(ADE20K_150_CATEGORIES) == 150
    assert len(ADE20K_847_CATEGORIES) == 847
    assert len(PASCAL_CONTEXT_59_CATEGORIES) == 59
    assert len(PASCAL_CONTEXT_459_CATEGORIES) == 459
    assert len(PASCAL_VOC_21_CATEGORIES) == 21
    # Mask2Former's ADE20K panoptic split: 100 things (instance-annotated) and 50 stuff.
    things = {c["name"] for c in ADE20K_150_CATEGORIES if c["isthing"]}
    assert len(things) == 100 and len(ADE20K_INSTANCE_TO_SEMANTIC) == 100
    assert {"bed", "windowpane", "person", "car", "chair", "flag", "clock"} <= things
    assert not {"wall", "building", "sky", "floor", "tree", "road", "grass"} & things
    assert ADE20K_150_CATEGORIES[12]["name"] == "person"  # SceneParsing class 13
    assert "edifice" in ADE20K_150_CATEGORIES[1]["synonyms"]  # "building, edifice"
    assert set(COCO_PANOPTIC_SYNONYMS) == {c["id"] for c in COCO_CATEGORIES}
    for cats in (ADE20K_150_CATEGORIES, ADE20K_847_CATEGORIES, PASCAL_CONTEXT_59_CATEGORIES,
                 PASCAL_CONTEXT_459_CATEGORIES, PASCAL_VOC_21_CATEGORIES):
        assert [c["id"] for c in cats] == list(range(len(cats)))
        assert all(c["synonyms"] and all(s.strip() == s and s for s in c["synonyms"])
                   for c in cats)


def test_ade847_ids_agree_with_the_official_instance_table():
    # FullADE20K ids of some SceneParse150 things, from the ADE20K instance release's
    # Instance100 / SceneParse150 / FullADE20K table.
    full_ids = {165: "bed", 3055: "windowpane", 1831: "person", 401: "car", 2684: "table",
                14: "airplane", 954: "flag", 530: "clock", 2254: "projection screen",
                1098: "glass"}
    by_ade_id = {c["ade_id"]: c for c in ADE20K_847_CATEGORIES}
    assert len(by_ade_id) == 847
    for ade_id, name in full_ids.items():
        assert name in by_ade_id[ade_id]["synonyms"], (ade_id, name)
    assert ADE20K_847_CATEGORIES[0]["ade_id"] == 2978 and ADE20K_847_CATEGORIES[0]["name"] == "wall"


def test_pascal_context_59_is_a_subset_of_459_in_id_order():
    full = {c["context_id"]: c["name"] for c in PASCAL_CONTEXT_459_CATEGORIES}
    ids = [c["context_id"] for c in PASCAL_CONTEXT_59_CATEGORIES]
    assert ids == sorted(ids)
    mismatched = {c["name"]: full[c["context_id"]] for c in PASCAL_CONTEXT_59_CATEGORIES
                  if full[c["context_id"]] != c["name"]}
    assert mismatched == {"diningtable": "table"}  # PC-59 renames "table"
    assert PASCAL_CONTEXT_459_CATEGORIES[0]["name"] == "accordion"
    assert PASCAL_CONTEXT_459_CATEGORIES[1]["name"] == "aeroplane"  # context_id 2


def test_voc_colors_are_the_devkit_colormap():
    colors = {c["name"]: c["color"] for c in PASCAL_VOC_21_CATEGORIES}
    assert colors["background"] == [0, 0, 0]
    assert colors["aeroplane"] == [128, 0, 0]
    assert colors["person"] == [192, 128, 128]
    assert colors["tvmonitor"] == [0, 64, 128]


# --------------------------------------------------------------------------- registration


def test_registration_is_lazy_idempotent_and_reports_missing_files(tmp_path, clean_catalog):
    root = tmp_path / "no_datasets_here"
    register_all_real(str(root))
    register_all_real(str(root))  # idempotent
    assert not root.exists()  # registering read and created nothing
    assert set(REAL_DATASET_NAMES) <= set(DatasetCatalog.list())
    expected = {
        "coco_2017_val_panoptic_with_sem_seg": ("coco/panoptic_semseg_val2017",
                                                "prepare_coco_semantic_from_panoptic.py"),
        "coco_2017_train_panoptic_caption_with_sem_seg": (
            "coco/annotations/captions_train2017_noun_phrases.json",
            "prepare_coco_caption_phrases.py"),
        "ade20k_panoptic_val": ("ade/ADEChallengeData2016/ade20k_panoptic_val.json",
                                "prepare_ade20k_panoptic.py"),
        "ade20k_full_sem_seg_val": ("ade/ADE20K_2021_17_01/annotations_detectron2/validation",
                                    "prepare_ade20k_full.py"),
        "ctx459_sem_seg_val": ("pascal_ctx_d2/annotations_ctx459/validation",
                               "prepare_pascal_context.py"),
        "pascal21_sem_seg_val": ("pascal_voc_d2/images/validation", "prepare_pascal_voc.py"),
    }
    for name, (path, script) in expected.items():
        with pytest.raises(FileNotFoundError) as err:
            DatasetCatalog.get(name)
        assert str(root / path) in str(err.value) and script in str(err.value), name
    with pytest.raises(ValueError, match="already registered"):
        register_all_real(str(tmp_path / "another_root"))


def test_foreign_registration_is_replaced(tmp_path, clean_catalog):
    DatasetCatalog.register("ade20k_sem_seg_val", lambda: [])
    MetadataCatalog.get("ade20k_sem_seg_val").set(image_root="elsewhere", stuff_classes=["x"])
    register_all_real(str(tmp_path))
    meta = MetadataCatalog.get("ade20k_sem_seg_val")
    assert meta.image_root == str(tmp_path / "ade/ADEChallengeData2016/images/validation")
    assert len(meta.stuff_classes) == 150


def test_metadata_and_evaluator_types(tmp_path, clean_catalog):
    register_all_real(str(tmp_path))
    meta = {n: MetadataCatalog.get(n) for n in REAL_DATASET_NAMES}
    for name, m in meta.items():
        assert m.evaluator_type in EVALUATOR_REGISTRY, name
    expected = {  # name: (evaluator_type, number of classes, ignore_label)
        "coco_2017_val_panoptic_with_sem_seg": ("coco_panoptic_seg", 133, 255),
        "coco_2017_train_panoptic_caption_with_sem_seg": ("coco_panoptic_seg", 133, 255),
        "ade20k_panoptic_val": ("ade20k_panoptic_seg", 150, 255),
        "ade20k_sem_seg_val": ("sem_seg", 150, 255),
        "ade20k_full_sem_seg_val": ("sem_seg", 847, 65535),
        "ctx59_sem_seg_val": ("sem_seg", 59, 255),
        "ctx459_sem_seg_val": ("sem_seg", 459, 65535),
        "pascal21_sem_seg_val": ("sem_seg", 21, 255),
    }
    for name, (kind, k, ignore) in expected.items():
        m = meta[name]
        assert (m.evaluator_type, len(m.stuff_classes), m.ignore_label) == (kind, k, ignore), name
        assert len(m.stuff_synonyms) == k
    coco = meta["coco_2017_val_panoptic_with_sem_seg"]
    assert len(coco.thing_classes) == 80 and coco.stuff_synonyms[0][0] == "person"
    assert coco.json_file.endswith("coco/annotations/instances_val2017.json")
    ade = meta["ade20k_panoptic_val"]
    assert len(ade.thing_dataset_id_to_contiguous_id) == 100
    assert ade.thing_dataset_id_to_contiguous_id[12] == 12  # person keeps its class index
    assert ade.json_file.endswith("ade20k_instance_val.json")
    inst = meta["ade20k_instance_val"]
    assert inst.evaluator_type == "coco" and len(inst.thing_classes) == 100
    # Mask2Former's ADE instance ids: bed, windowpane, cabinet, person, ... -> 0, 1, 2, 3, ...
    assert [inst.thing_dataset_id_to_contiguous_id[i] for i in (7, 8, 10, 12)] == [0, 1, 2, 3]
    assert meta["ctx59_sem_seg_val"].stuff_classes[36] == "person"
    assert meta["pascal21_sem_seg_val"].stuff_classes[0] == "background"


# --------------------------------------------------------------------------- COCO


def _coco_fixture(root):
    coco = root / "coco"
    # image 1: person (segment 5, category 1), car (9, category 3), sky-other-merged (300, 187)
    # image 2: rug-merged (7, category 200) and unlabelled pixels
    ids1 = np.zeros((4, 6), np.int64)
    ids1[:2] = 300
    ids1[2:, :3] = 5
    ids1[2:, 3:5] = 9
    ids2 = np.zeros((5, 3), np.int64)
    ids2[1:] = 7
    images, annotations = [], []
    for image_id, ids, segs in ((1, ids1, [(5, 1), (9, 3), (300, 187)]),
                                (2, ids2, [(7, 200)])):
        stem = f"{image_id:012d}"
        _write_jpg(coco / "val2017" / f"{stem}.jpg", *ids.shape)
        _write_png(coco / "panoptic_val2017" / f"{stem}.png", _id_to_rgb(ids))
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": ids.shape[0],
                       "width": ids.shape[1]})
        annotations.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": [
            {"id": s, "category_id": c, "iscrowd": 0, "area": int((ids == s).sum()),
             "bbox": [0, 0, 1, 1]} for s, c in segs]})
    captions = [{"id": 11, "image_id": 1, "caption": "A red car on the street."},
                {"id": 12, "image_id": 1, "caption": "Two dogs near a wooden fence"},
                {"id": 21, "image_id": 2, "caption": "a rug"}]
    ann = coco / "annotations"
    ann.mkdir(parents=True)
    cats = [dict(c) for c in COCO_CATEGORIES]
    (ann / "panoptic_val2017.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": cats}))
    (ann / "instances_val2017.json").write_text(json.dumps(
        {"images": images, "annotations": [], "categories": [c for c in cats if c["isthing"]]}))
    (ann / "captions_val2017.json").write_text(json.dumps(
        {"images": images, "annotations": captions}))
    return ids1, ids2


def _fake_tagger_module(monkeypatch):
    lexicon = {"a": "DT", "the": "DT", "red": "JJ", "wooden": "JJ", "on": "IN", "near": "IN",
               "two": "CD", ".": "."}
    module = types.ModuleType("fake_caption_tagger")
    module.make = lambda: (lambda toks: [(t, lexicon.get(t.lower(), "NN")) for t in toks])
    monkeypatch.setitem(sys.modules, "fake_caption_tagger", module)
    return "fake_caption_tagger:make"


def test_coco_prepare_and_load(tmp_path, clean_catalog, monkeypatch):
    ids1, ids2 = _coco_fixture(tmp_path)
    assert _run("prepare_coco_semantic_from_panoptic", tmp_path) == 0
    sem_dir = tmp_path / "coco/panoptic_semseg_val2017"
    sem1 = np.asarray(Image.open(sem_dir / "000000000001.png"))
    # contiguous ids = index in COCO_CATEGORIES: person 0, car 2, sky-other-merged 119, rug 132
    expected1 = np.select([ids1 == 5, ids1 == 9, ids1 == 300], [0, 2, 119], 255)
    np.testing.assert_array_equal(sem1, expected1)
    sem2 = np.asarray(Image.open(sem_dir / "000000000002.png"))
    np.testing.assert_array_equal(sem2, np.where(ids2 == 7, 132, 255))

    # idempotent: existing outputs are kept unless --overwrite
    _write_png(sem_dir / "000000000002.png", np.zeros_like(sem2))
    assert _run("prepare_coco_semantic_from_panoptic", tmp_path) == 0
    assert np.asarray(Image.open(sem_dir / "000000000002.png")).max() == 0
    assert _run("prepare_coco_semantic_from_panoptic", tmp_path, "--overwrite") == 0
    np.testing.assert_array_equal(np.asarray(Image.open(sem_dir / "000000000002.png")), sem2)

    spec = _fake_tagger_module(monkeypatch)
    phrases_main = _script("prepare_coco_caption_phrases").main
    assert phrases_main(["--root", str(tmp_path), "--splits", "val", "--tagger", spec]) == 0
    phrases = json.loads((tmp_path / "coco/annotations/captions_val2017_noun_phrases.json")
                         .read_text())
    assert phrases == {"11": ["red car", "street"], "12": ["dogs", "wooden fence"], "21": ["rug"]}

    register_all_real(str(tmp_path))
    dicts = DatasetCatalog.get("coco_2017_val_panoptic_caption_with_sem_seg")
    assert [d["image_id"] for d in dicts] == [1, 2]
    for d in dicts:
        for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
            assert os.path.isfile(d[key]), key
    assert [(s["id"], s["category_id"], s["isthing"]) for s in dicts[0]["segments_info"]] == [
        (5, 0, True), (9, 2, True), (300, 119, False)]
    assert dicts[0]["captions"] == ["A red car on the street.", "Two dogs near a wooden fence"]
    assert dicts[0]["caption_noun_phrases"] == [["red car", "street"], ["dogs", "wooden fence"]]
    plain = DatasetCatalog.get("coco_2017_val_panoptic_with_sem_seg")
    assert len(plain) == 2 and "captions" not in plain[0]


def test_prepare_scripts_report_missing_inputs(tmp_path, capsys):
    for name, needle in (("prepare_coco_semantic_from_panoptic", "panoptic_val2017.json"),
                         ("prepare_ade20k_sem_seg", "ADEChallengeData2016.zip"),
                         ("prepare_ade20k_panoptic", "annotations_instance.tar"),
                         ("prepare_ade20k_full", "index_ade20k.pkl"),
                         ("prepare_pascal_context", "trainval.tar.gz"),
                         ("prepare_pascal_voc", "VOCtrainval_11-May-2012.tar")):
        assert _run(name, tmp_path) == 1, name
        err = capsys.readouterr().err
        assert "MISSING " + str(tmp_path) in err and needle in err, name


# --------------------------------------------------------------------------- ADE20K-150


def _ade_fixture(root):
    ade = root / "ade/ADEChallengeData2016"
    # image 1 (4x6): wall (1), sky (3), a person (13) and a car (21) instance, unlabelled (0);
    # the person instance also covers two "wall" pixels (instances are pasted over stuff), and
    # one "person" pixel has no instance (void in panoptic).
    sem1 = np.array([[3, 3, 3, 3, 3, 3],
                     [1, 1, 1, 1, 0, 0],
                     [13, 13, 1, 21, 21, 13],
                     [13, 13, 1, 21, 21, 1]], np.uint8)
    ins_id1 = np.array([[0, 0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 0, 0],
                        [1, 1, 1, 2, 2, 0],
                        [1, 1, 1, 2, 2, 0]], np.uint8)
    ins_cat1 = np.select([ins_id1 == 1, ins_id1 == 2], [4, 9], 0)  # Instance100: person 4, car 9
    # image 2 (3x3): floor (4) only, no instances
    sem2 = np.full((3, 3), 4, np.uint8)
    for stem, sem, ins_cat, ins_id in (("ADE_val_00000001", sem1, ins_cat1, ins_id1),
                                       ("ADE_val_00000002", sem2, np.zeros_like(sem2),
                                        np.zeros_like(sem2))):
        _write_jpg(ade / "images/validation" / f"{stem}.jpg", *sem.shape)
        _write_png(ade / "annotations/validation" / f"{stem}.png", sem)
        _write_png(ade / "annotations_instance/validation" / f"{stem}.png",
                   np.stack([ins_cat, ins_id, np.zeros_like(sem)], axis=-1))
    return sem1, ins_id1


def test_ade20k_prepare_and_load(tmp_path, clean_catalog):
    sem1, ins_id1 = _ade_fixture(tmp_path)
    ade = tmp_path / "ade/ADEChallengeData2016"
    assert _run("prepare_ade20k_sem_seg", tmp_path) == 0
    label1 = np.asarray(Image.open(ade / "annotations_detectron2/validation/ADE_val_00000001.png"))
    np.testing.assert_array_equal(label1, np.where(sem1 == 0, 255, sem1.astype(int) - 1))

    assert _run("prepare_ade20k_panoptic", tmp_path) == 0
    pan = json.loads((ade / "ade20k_panoptic_val.json").read_text())
    assert [im["id"] for im in pan["images"]] == ["ADE_val_00000001", "ADE_val_00000002"]
    assert len(pan["categories"]) == 150 and sum(c["isthing"] for c in pan["categories"]) == 100
    ann1 = pan["annotations"][0]
    ids = _rgb_to_id(ade / "ade20k_panoptic_val" / ann1["file_name"])
    by_cat = {s["category_id"]: s for s in ann1["segments_info"]}
    assert set(by_cat) == {0, 2, 12, 20}  # wall, sky, person, car (class index = value - 1)
    for cat, expected_mask in ((2, sem1 == 3), (12, ins_id1 == 1), (20, ins_id1 == 2),
                               (0, (sem1 == 1) & (ins_id1 == 0))):
        np.testing.assert_array_equal(ids == by_cat[cat]["id"], expected_mask)
        assert by_cat[cat]["area"] == expected_mask.sum()
    assert by_cat[12]["bbox"] == [0, 2, 3, 2]  # x, y, w, h of the person instance
    assert ids[2, 5] == 0 and ids[1, 4] == 0  # person pixel without instance; "other"

    inst = json.loads((ade / "ade20k_instance_val.json").read_text())
    assert [(a["image_id"], a["category_id"]) for a in inst["annotations"]] == [
        ("ADE_val_00000001", 12), ("ADE_val_00000001", 20)]
    np.testing.assert_array_equal(mask_util.decode(inst["annotations"][0]["segmentation"]),
                                  ins_id1 == 1)

    register_all_real(str(tmp_path))
    dicts = DatasetCatalog.get("ade20k_panoptic_val")
    assert [d["image_id"] for d in dicts] == ["ADE_val_00000001", "ADE_val_00000002"]
    assert all(os.path.isfile(d[k]) for d in dicts
               for k in ("file_name", "pan_seg_file_name", "sem_seg_file_name"))
    assert {(s["category_id"], s["isthing"]) for s in dicts[0]["segments_info"]} == {
        (0, False), (2, False), (12, True), (20, True)}
    instances = DatasetCatalog.get("ade20k_instance_val")
    # contiguous thing ids (Mask2Former): person 3, car 8
    assert [a["category_id"] for a in instances[0]["annotations"]] == [3, 8]
    sem_dicts = DatasetCatalog.get("ade20k_sem_seg_val")
    assert len(sem_dicts) == 2 and all(os.path.isfile(d["sem_seg_file_name"]) for d in sem_dicts)


# --------------------------------------------------------------------------- ADE20K-847


def _seg_png_rgb(ade_ids):
    """Official ADE20K ``*_seg.png`` class encoding: R = id // 256 * 10, G = id % 256."""
    return np.stack([ade_ids // 256 * 10, ade_ids % 256, np.zeros_like(ade_ids)],
                    axis=-1).astype(np.uint8)


def test_ade20k_full_prepare_and_load(tmp_path, clean_catalog):
    full = tmp_path / "ade/ADE20K_2021_17_01"
    folder_val = "ADE20K_2021_17_01/images/ADE/validation/urban"
    folder_train = "ADE20K_2021_17_01/images/ADE/training/home"
    # val image: wall (ade id 2978 -> 0), person (1831 -> 11), unknown object 5 and 0 -> void
    small = np.array([[2978, 2978, 1831], [5, 0, 1831]])
    # train image 600 x 1030: shrunk to a 512 px short side; left half wall, right half person
    big = np.full((600, 1030), 2978)
    big[:, 515:] = 1831
    for folder, name, ids in ((folder_val, "ADE_val_00000001.jpg", small),
                              (folder_train, "ADE_train_00000001.jpg", big)):
        _write_jpg(tmp_path / "ade" / folder / name, *ids.shape)
        _write_png(tmp_path / "ade" / folder / name.replace(".jpg", "_seg.png"), _seg_png_rgb(ids))
    with open(full / "index_ade20k.pkl", "wb") as f:
        pickle.dump({"folder": [folder_val, folder_train],
                     "filename": ["ADE_val_00000001.jpg", "ADE_train_00000001.jpg"]}, f)

    main = _script("prepare_ade20k_full").main
    assert main(["--root", str(tmp_path), "--workers", "1"]) == 0
    label = np.asarray(Image.open(full / "annotations_detectron2/validation/ADE_val_00000001.tif"))
    assert label.dtype == np.uint16
    np.testing.assert_array_equal(label, [[0, 0, 11], [65535, 65535, 11]])
    big_label = np.asarray(Image.open(full / "annotations_detectron2/training/"
                                      "ADE_train_00000001.tif"))
    assert big_label.shape == (512, 879)  # round(1030 / 600 * 512)
    assert set(np.unique(big_label)) == {0, 11}
    assert big_label[0, 0] == 0 and big_label[-1, -1] == 11
    big_image = Image.open(full / "images_detectron2/training/ADE_train_00000001.jpg")
    assert big_image.size == (879, 512)

    register_all_real(str(tmp_path))
    (d,) = DatasetCatalog.get("ade20k_full_sem_seg_val")
    assert d["sem_seg_file_name"].endswith("ADE_val_00000001.tif")
    assert os.path.isfile(d["file_name"])


# --------------------------------------------------------------------------- PASCAL


def test_pascal_context_prepare_and_load(tmp_path, clean_catalog):
    voc = tmp_path / "VOCdevkit/VOC2010"
    # LabelMap values (1-based labels.txt order): 0 unlabelled, 1 accordion (not in PC-59),
    # 2 aeroplane (PC-59 class 0), 284 person (PC-59 class 36), 458 wood (PC-59 class 58),
    # 459 wool (not in PC-59)
    label_map = np.array([[0, 1, 2], [284, 458, 459]], np.uint16)
    _write_jpg(voc / "JPEGImages/2008_000002.jpg", 2, 3)
    _write_jpg(voc / "JPEGImages/2008_000009.jpg", 2, 3)  # a train image: not converted
    (voc / "trainval").mkdir(parents=True)
    scipy.io.savemat(voc / "trainval/2008_000002.mat", {"LabelMap": label_map})
    (voc / "ImageSets/Main").mkdir(parents=True)
    (voc / "ImageSets/Main/val.txt").write_text("2008_000002\n")

    assert _run("prepare_pascal_context", tmp_path) == 0
    ctx = tmp_path / "pascal_ctx_d2"
    np.testing.assert_array_equal(
        np.asarray(Image.open(ctx / "annotations_ctx59/validation/2008_000002.png")),
        [[255, 255, 0], [36, 58, 255]])
    ctx459 = np.asarray(Image.open(ctx / "annotations_ctx459/validation/2008_000002.tif"))
    assert ctx459.dtype == np.uint16
    np.testing.assert_array_equal(ctx459, [[65535, 0, 1], [283, 457, 458]])
    assert sorted(os.listdir(ctx / "images/validation")) == ["2008_000002.jpg"]

    register_all_real(str(tmp_path))
    for name, ext in (("ctx59_sem_seg_val", ".png"), ("ctx459_sem_seg_val", ".tif")):
        (d,) = DatasetCatalog.get(name)
        assert d["sem_seg_file_name"].endswith("2008_000002" + ext)
        assert os.path.isfile(d["file_name"]) and os.path.isfile(d["sem_seg_file_name"])


def test_pascal_voc_prepare_and_load(tmp_path, clean_catalog):
    voc = tmp_path / "VOCdevkit/VOC2012"
    label = np.array([[0, 15, 15], [255, 20, 0]], np.uint8)  # background, person, void, tv
    palette = [v for c in PASCAL_VOC_21_CATEGORIES for v in c["color"]]
    _write_jpg(voc / "JPEGImages/2007_000033.jpg", 2, 3)
    _write_png(voc / "SegmentationClass/2007_000033.png", label, palette=palette)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n")

    assert _run("prepare_pascal_voc", tmp_path) == 0
    out = Image.open(tmp_path / "pascal_voc_d2/annotations_pascal21/validation/2007_000033.png")
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), label)

    register_all_real(str(tmp_path))
    (d,) = DatasetCatalog.get("pascal21_sem_seg_val")
    assert os.path.isfile(d["file_name"]) and d["sem_seg_file_name"].endswith("2007_000033.png")

    # A label PNG converted to RGB (colours, not indices) is refused, naming the file.
    Image.open(voc / "SegmentationClass/2007_000033.png").convert("RGB").save(
        voc / "SegmentationClass/2007_000033.png")
    with pytest.raises(ValueError, match="2007_000033.png.*palette"):
        _run("prepare_pascal_voc", tmp_path, "--overwrite")
