"""Tests of the embedded shapes-world dataset (generator + detectron2 registration).

Ground-truth relations are re-derived here independently (id decoding, category mapping, RLE
decoding, star geometry) rather than through the code under test.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from odise_ext.data.datasets.panoptic_sem_seg import (
    get_panoptic_metadata,
    load_panoptic_json_with_sem_seg,
)
from odise_ext.data.datasets.register_shapes import SHAPES_DATASET_NAMES, register_all_shapes
from odise_ext.data.datasets.shapes_world import (
    ensure_shapes_world,
    generate_shapes_world,
    get_shapes_root,
)
from detectron2.data import DatasetCatalog, MetadataCatalog

THINGS = ["circle", "square", "triangle", "ring", "star"]
STUFF = ["sky", "grass", "water", "sand"]
TINY = dict(num_train=4, num_val=3, image_size=96)
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}


def _json(path):
    with open(path) as f:
        return json.load(f)


def _pan_ids(path):
    """Independent COCO panoptic decoding: id = R + 256 G + 256^2 B."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


def _ann(root, name):
    return _json(root / "annotations" / name)


def _panoptic(root, split):
    """(json, {image_id: annotation}, {category_id: category})."""
    pan = _ann(root, f"panoptic_{split}.json")
    by_image = {a["image_id"]: a for a in pan["annotations"]}
    return pan, by_image, {c["id"]: c for c in pan["categories"]}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return ensure_shapes_world(tmp_path_factory.mktemp("tiny") / "world", **TINY)


# ------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------
def _all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_generation_is_byte_for_byte_deterministic(tmp_path, tiny_root):
    other = generate_shapes_world(tmp_path / "again", **TINY)
    first, second = _all_files(tiny_root), _all_files(other)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert not different


def test_layout_follows_the_contract(tiny_root):
    ids = {}
    for split in ("train", "val"):
        pan = _json(tiny_root / "annotations" / f"panoptic_{split}.json")
        ids[split] = [img["id"] for img in pan["images"]]
        assert len(ids[split]) == TINY[f"num_{split}"]
        for image_id in ids[split]:
            stem = f"{image_id:012d}"
            image = Image.open(tiny_root / "images" / split / f"{stem}.jpg")
            assert image.mode == "RGB" and image.size == (96, 96)
            for sub in (f"panoptic_{split}", f"panoptic_semseg_{split}"):
                assert (tiny_root / "annotations" / sub / f"{stem}.png").is_file()
            assert (tiny_root / "depth" / split / f"{stem}.png").is_file()
        for name in ("instances", "person_keypoints", "captions", "png_shapes", "refs"):
            assert (tiny_root / "annotations" / f"{name}_{split}.json").is_file()
        assert (tiny_root / "annotations" / f"captions_{split}_noun_phrases.json").is_file()
    assert not set(ids["train"]) & set(ids["val"])


def _unregister_shapes():
    for name in SHAPES_DATASET_NAMES:
        if name in DatasetCatalog:
            DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.fixture
def unregistered_shapes():
    """No shapes dataset registered during the test; the session's registration is restored
    afterwards (other tests rely on it)."""
    saved = {n: (DatasetCatalog[n], MetadataCatalog.get(n)) for n in SHAPES_DATASET_NAMES
             if n in DatasetCatalog}
    _unregister_shapes()
    yield
    _unregister_shapes()
    for name, (func, meta) in saved.items():
        DatasetCatalog[name], MetadataCatalog[name] = func, meta


def test_default_size_generates_on_first_use_via_catalog_and_env(
    tmp_path, monkeypatch, unregistered_shapes
):
    """Registration under ODISE_EXT_CACHE=tmp generates nothing; the first DatasetCatalog.get
    generates the default dataset there."""
    monkeypatch.setenv("ODISE_EXT_CACHE", str(tmp_path / "cache"))
    register_all_shapes()
    assert MetadataCatalog.get("shapes_val_panoptic_with_sem_seg").stuff_classes == THINGS + STUFF
    assert not (tmp_path / "cache").exists()  # metadata needs no data
    dicts = DatasetCatalog.get("shapes_val_panoptic_with_sem_seg")
    root = tmp_path / "cache" / "shapes_world_v1"
    assert get_shapes_root() == root
    assert len(dicts) == 24 and all(d["file_name"].startswith(str(root)) for d in dicts)
    assert len(_ann(root, "panoptic_train.json")["images"]) == 96
    assert Image.open(dicts[0]["file_name"]).size == (128, 128)


_WORKER = textwrap.dedent(
    """
    import importlib, logging, sys, types
    # Import only the generator modules, not the odise_ext package (torch, detectron2): fast.
    base = sys.argv[1]
    for name, sub in (("odise_ext", ""), ("odise_ext.data", "/data"),
                      ("odise_ext.data.datasets", "/data/datasets")):
        module = types.ModuleType(name)
        module.__path__ = [base + sub]
        sys.modules[name] = module
    sw = importlib.import_module("odise_ext.data.datasets.shapes_world")
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    print("ready", flush=True)
    sys.stdin.readline()  # start line: both processes call ensure at the same moment
    print("root", sw.ensure_shapes_world(sys.argv[2], num_train=6, num_val=2, image_size=64))
    """
)


def test_concurrent_ensure_generates_once_and_validly(tmp_path):
    package_dir = str(Path(__file__).resolve().parents[2] / "odise_ext")
    root = tmp_path / "shared" / "world"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, package_dir, str(root)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    logs = "".join(out for out, _ in outputs)
    assert logs.count("Generating the shapes world") == 1
    assert logs.count(f"root {root}") == 2
    # Only the dataset and the lock file remain beside it: no half-written temp directory.
    assert sorted(p.name for p in root.parent.iterdir()) == [".world.lock", "world"]
    reference = generate_shapes_world(tmp_path / "reference", num_train=6, num_val=2, image_size=64)
    assert _all_files(root) == _all_files(reference)


def test_bad_generation_requests_are_rejected(tmp_path, tiny_root):
    with pytest.raises(ValueError, match="generated with"):
        ensure_shapes_world(tiny_root, num_train=5, num_val=3, image_size=96)
    (tmp_path / "not_a_dataset").mkdir()
    with pytest.raises(FileNotFoundError, match="not a shapes-world dataset"):
        ensure_shapes_world(tmp_path / "not_a_dataset", **TINY)
    with pytest.raises(ValueError, match="num_train"):
        generate_shapes_world(tmp_path / "x", num_train=0)
    with pytest.raises(ValueError, match="image_size"):
        generate_shapes_world(tmp_path / "y", image_size=16)
    with pytest.raises(FileExistsError):
        generate_shapes_world(tiny_root, **TINY)


# ------------------------------------------------------------------------------------------
# Annotation consistency
# ------------------------------------------------------------------------------------------
def test_panopticapi_scores_ground_truth_against_itself_as_perfect(tiny_root, capsys):
    from panopticapi.evaluation import pq_compute

    ann = tiny_root / "annotations"
    gt_json, gt_dir = str(ann / "panoptic_val.json"), str(ann / "panoptic_val")
    results = pq_compute(gt_json, gt_json, gt_dir, gt_dir)
    assert 100 * results["All"]["pq"] == pytest.approx(100.0)
    assert results["Things"]["n"] > 0 and results["Stuff"]["n"] > 0


def test_segments_info_matches_the_panoptic_pngs(shapes_root):
    for split in ("train", "val"):
        pan, _, cats = _panoptic(shapes_root, split)
        assert {c["name"] for c in cats.values()} == set(THINGS + STUFF)
        assert sorted(c["name"] for c in cats.values() if c["isthing"]) == sorted(THINGS)
        for ann in pan["annotations"]:
            ids = _pan_ids(shapes_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
            present, counts = np.unique(ids, return_counts=True)
            assert dict(zip(present.tolist(), counts.tolist())) == {
                s["id"]: s["area"] for s in ann["segments_info"]}
            things = [s for s in ann["segments_info"] if cats[s["category_id"]]["isthing"]]
            assert 1 <= len(things) <= 4
            for s in ann["segments_info"]:
                ys, xs = np.nonzero(ids == s["id"])
                assert s["bbox"] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]


def test_sem_seg_png_is_the_panoptic_map_through_the_category_mapping(shapes_root):
    for split in ("train", "val"):
        pan, _, _ = _panoptic(shapes_root, split)
        # Mask2Former: contiguous index in the categories list (all classes), 255 = unlabeled.
        contiguous = {c["id"]: i for i, c in enumerate(pan["categories"])}
        assert [c["name"] for c in pan["categories"]] == THINGS + STUFF
        for ann in pan["annotations"]:
            ids = _pan_ids(shapes_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
            expected = np.full(ids.shape, 255, dtype=np.uint8)
            for s in ann["segments_info"]:
                expected[ids == s["id"]] = contiguous[s["category_id"]]
            sem_dir = shapes_root / "annotations" / f"panoptic_semseg_{split}"
            sem = Image.open(sem_dir / ann["file_name"])
            assert sem.mode == "L"
            np.testing.assert_array_equal(np.asarray(sem), expected)


def test_instance_masks_equal_the_thing_segments(shapes_root):
    for split in ("train", "val"):
        _, pan_by_image, cats = _panoptic(shapes_root, split)
        inst = _json(shapes_root / "annotations" / f"instances_{split}.json")
        assert sorted(c["name"] for c in inst["categories"]) == sorted(THINGS)
        by_image = {}
        for a in inst["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        for image_id, ann in pan_by_image.items():
            ids = _pan_ids(shapes_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
            things = {s["id"]: s for s in ann["segments_info"] if cats[s["category_id"]]["isthing"]}
            matched = []
            for a in by_image.get(image_id, []):
                mask = mask_util.decode(a["segmentation"]).astype(bool)
                hits = [sid for sid in things if np.array_equal(mask, ids == sid)]
                assert len(hits) == 1
                seg = things[hits[0]]
                assert a["category_id"] == seg["category_id"] and a["area"] == seg["area"]
                assert a["bbox"] == seg["bbox"] and a["iscrowd"] == 0
                matched.append(hits[0])
            assert sorted(matched) == sorted(things)


def test_png_narratives_link_to_decodable_segments(shapes_root):
    seen = {"singular": 0, "plural": 0, "stuff": 0, "noun_without_ids": 0, "and": 0}
    for split in ("train", "val"):
        _, pan_by_image, cats = _panoptic(shapes_root, split)
        narratives = _json(shapes_root / "annotations" / f"png_shapes_{split}.json")
        per_image = {}
        for n in narratives:
            assert set(n) == {"image_id", "annotator_id", "caption", "segments"}
            assert isinstance(n["image_id"], str) and isinstance(n["annotator_id"], int)
            per_image[n["image_id"]] = per_image.get(n["image_id"], 0) + 1
            ann = pan_by_image[int(n["image_id"])]
            infos = {str(s["id"]): s for s in ann["segments_info"]}
            ids = _pan_ids(shapes_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
            assert " ".join(u["utterance"] for u in n["segments"]) == n["caption"]
            for u in n["segments"]:
                assert set(u) == {"utterance", "segment_ids", "plural", "noun"}
                if not u["noun"]:
                    assert u["segment_ids"] == []
                    seen["and"] += u["utterance"] == "and"
                    continue
                if not u["segment_ids"]:
                    seen["noun_without_ids"] += 1
                    continue
                assert len(set(u["segment_ids"])) == len(u["segment_ids"])
                for sid in u["segment_ids"]:
                    assert (ids == int(sid)).sum() == infos[sid]["area"] > 0
                names = {cats[infos[s]["category_id"]]["name"] for s in u["segment_ids"]}
                words = u["utterance"].split()
                assert u["plural"] == (len(u["segment_ids"]) >= 2)
                if words[0] == "the":  # stuff: "the grass"
                    assert names == {words[1]} and words[1] in STUFF
                    seen["stuff"] += 1
                    continue
                assert NUMBERS[words[0]] == len(u["segment_ids"])
                noun = words[-1][:-1] if len(u["segment_ids"]) >= 2 else words[-1]
                assert names == {noun} or (noun == "shape" and names <= set(THINGS))
                seen["plural" if u["plural"] else "singular"] += 1
        assert set(per_image.values()) <= {1, 2}
        assert len(per_image) == len(pan_by_image)
    assert all(v > 0 for v in seen.values()), seen


def test_captions_have_exact_noun_phrases_that_match_the_segments(shapes_root):
    for split in ("train", "val"):
        _, pan_by_image, cats = _panoptic(shapes_root, split)
        captions = _json(shapes_root / "annotations" / f"captions_{split}.json")["annotations"]
        phrases = _json(shapes_root / "annotations" / f"captions_{split}_noun_phrases.json")
        assert len({c["id"] for c in captions}) == len(captions) == 5 * len(pan_by_image)
        assert set(phrases) == {str(c["id"]) for c in captions}
        for c in captions:
            segments = pan_by_image[c["image_id"]]["segments_info"]
            names = [cats[s["category_id"]]["name"] for s in segments]
            position = 0
            for phrase in phrases[str(c["id"])]:
                position = c["caption"].index(phrase, position) + len(phrase)  # in order
                words = phrase.split()
                if words[0] == "the":
                    assert words[1] in STUFF and words[1] in names
                    continue
                count = NUMBERS[words[0]]
                noun = words[-1][:-1] if count > 1 else words[-1]
                if noun == "shape":
                    assert count == sum(n in THINGS for n in names)
                elif len(words) == 2:  # no colour: every shape of that class
                    assert count == names.count(noun)
                else:
                    assert 1 <= count <= names.count(noun)


def test_star_keypoints_geometry_and_visibility(shapes_root):
    visibilities = []
    for split in ("train", "val"):
        kp = _json(shapes_root / "annotations" / f"person_keypoints_{split}.json")
        (cat,) = kp["categories"]
        assert cat["name"] == "star" and len(cat["keypoints"]) == 5
        inst = {a["id"]: a for a in _ann(shapes_root, f"instances_{split}.json")["annotations"]}
        images = {img["id"]: img for img in kp["images"]}
        assert kp["annotations"]
        for a in kp["annotations"]:
            assert a["category_id"] == cat["id"] == inst[a["id"]]["category_id"]
            assert a["segmentation"] == inst[a["id"]]["segmentation"]
            pts = np.array(a["keypoints"], dtype=np.float64).reshape(5, 3)
            xy, vis = pts[:, :2] + 0.5, pts[:, 2]  # COCO pixel indices -> continuous
            assert a["num_keypoints"] == int((vis > 0).sum()) == 5
            # Regular pentagon of tips, ordered clockwise from the top (names in the category).
            radii = np.linalg.norm(xy - xy.mean(0), axis=1)
            sides = np.linalg.norm(xy - np.roll(xy, -1, axis=0), axis=1)
            assert np.ptp(radii) < 0.05 and np.ptp(sides) < 0.05
            top, upper_right, lower_right, lower_left, upper_left = xy
            assert top[1] == xy[:, 1].min()
            assert upper_right[0] > upper_left[0] and lower_right[0] > lower_left[0]
            # Occluded (v=1) exactly when something nearer covers the tip pixel.
            stem = os.path.splitext(images[a["image_id"]]["file_name"])[0]
            depth = np.asarray(Image.open(shapes_root / "depth" / split / f"{stem}.png"))
            star_depth = np.unique(depth[mask_util.decode(a["segmentation"]).astype(bool)])
            assert len(star_depth) == 1
            for (x, y), v in zip(np.floor(xy).astype(int), vis):
                assert v == (1 if depth[y, x] < star_depth[0] else 2)
                visibilities.append(v)
    assert 1 in visibilities and 2 in visibilities


def test_depth_planes_and_shape_depths(shapes_root):
    for split in ("train", "val"):
        _, pan_by_image, cats = _panoptic(shapes_root, split)
        for image_id, ann in pan_by_image.items():
            image = Image.open(shapes_root / "depth" / split / f"{image_id:012d}.png")
            depth = np.asarray(image)
            assert image.mode.startswith("I") and depth.max() <= 65535
            ids = _pan_ids(shapes_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
            thing_depths, stuff_min = [], np.inf
            for s in ann["segments_info"]:
                values = depth[ids == s["id"]]
                name = cats[s["category_id"]]["name"]
                if name in THINGS:
                    assert len(np.unique(values)) == 1  # a shape is at one constant depth
                    thing_depths.append(int(values[0]))
                else:
                    stuff_min = min(stuff_min, values.min())
                if name == "sky":
                    assert (values == 40000).all()  # 40 m, the farthest
                elif name in STUFF:
                    assert 0 < values.max() <= 30000
            assert len(set(thing_depths)) == len(thing_depths)
            assert max(thing_depths) < stuff_min  # shapes stand in front of the background


def test_refs_point_to_instances_of_their_image(shapes_root):
    for split in ("train", "val"):
        inst = _json(shapes_root / "annotations" / f"instances_{split}.json")
        anns = {a["id"]: a for a in inst["annotations"]}
        names = {c["id"]: c["name"] for c in inst["categories"]}
        refs = _json(shapes_root / "annotations" / f"refs_{split}.json")
        assert {r["ann_id"] for r in refs} == set(anns)
        assert len({r["ref_id"] for r in refs}) == len(refs)
        first_sentences = {}
        for r in refs:
            a = anns[r["ann_id"]]
            assert r["image_id"] == a["image_id"] and r["category_id"] == a["category_id"]
            sents = [s["sent"] for s in r["sentences"]]
            assert len(sents) >= 2 and all(names[a["category_id"]] in s for s in sents)
            first_sentences.setdefault(r["image_id"], []).append(sents[0])
        for sents in first_sentences.values():  # the first sentence is unambiguous
            assert len(set(sents)) == len(sents)


# ------------------------------------------------------------------------------------------
# Registration
# ------------------------------------------------------------------------------------------
PANOPTIC_META_KEYS = {
    "thing_classes", "thing_colors", "stuff_classes", "stuff_colors",
    "thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id", "panoptic_root",
    "image_root", "panoptic_json", "sem_seg_root", "json_file", "evaluator_type",
    "ignore_label", "label_divisor",
}


def test_registration_is_idempotent_and_rejects_another_root(shapes_root, tmp_path):
    assert all(name in DatasetCatalog for name in SHAPES_DATASET_NAMES)
    before = {n: DatasetCatalog[n] for n in SHAPES_DATASET_NAMES}
    register_all_shapes()
    register_all_shapes(shapes_root)
    assert {n: DatasetCatalog[n] for n in SHAPES_DATASET_NAMES} == before
    with pytest.raises(ValueError, match="already registered"):
        register_all_shapes(tmp_path / "elsewhere")


def test_panoptic_dicts_and_metadata_follow_mask2former(shapes_root):
    for split in ("train", "val"):
        pan, pan_by_image, cats = _panoptic(shapes_root, split)
        for kind in ("panoptic_with_sem_seg", "panoptic_caption_with_sem_seg"):
            name = f"shapes_{split}_{kind}"
            meta = MetadataCatalog.get(name)
            assert PANOPTIC_META_KEYS <= set(meta.as_dict())
            assert meta.stuff_classes == THINGS + STUFF and meta.thing_classes == THINGS
            assert (meta.evaluator_type, meta.ignore_label, meta.label_divisor) == (
                "coco_panoptic_seg", 255, 1000)
            assert meta.panoptic_root == str(shapes_root / "annotations" / f"panoptic_{split}")
            assert sorted(meta.thing_dataset_id_to_contiguous_id.values()) == list(range(5))
            assert sorted(meta.stuff_dataset_id_to_contiguous_id.values()) == list(range(9))
            dicts = DatasetCatalog.get(name)
            assert len(dicts) == len(pan["images"])
            for d in dicts:
                keys = {"file_name", "image_id", "pan_seg_file_name", "sem_seg_file_name",
                        "segments_info"}
                if "caption" in kind:
                    keys |= {"captions", "caption_noun_phrases"}
                    assert len(d["captions"]) == len(d["caption_noun_phrases"]) == 5
                    assert all(p in c for c, ps in zip(d["captions"], d["caption_noun_phrases"])
                               for p in ps)
                assert set(d) == keys
                for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
                    assert os.path.isfile(d[key])
                raw = pan_by_image[d["image_id"]]["segments_info"]
                for s, r in zip(d["segments_info"], raw):
                    cat_name = cats[r["category_id"]]["name"]
                    assert s["id"] == r["id"] and meta.stuff_classes[s["category_id"]] == cat_name
                    assert s["isthing"] == (cat_name in THINGS)


def test_other_registered_datasets_load(shapes_root):
    from detectron2.data.detection_utils import create_keypoint_hflip_indices

    n_val = len(_json(shapes_root / "annotations" / "panoptic_val.json")["images"])
    sem = DatasetCatalog.get("shapes_val_sem_seg")
    assert len(sem) == n_val and all(os.path.isfile(d["sem_seg_file_name"]) for d in sem)
    meta = MetadataCatalog.get("shapes_val_sem_seg")
    assert (meta.evaluator_type, meta.ignore_label) == ("sem_seg", 255)
    assert meta.stuff_classes == THINGS + STUFF

    inst = DatasetCatalog.get("shapes_val_instances")
    assert MetadataCatalog.get("shapes_val_instances").thing_classes == THINGS
    assert MetadataCatalog.get("shapes_val_instances").evaluator_type == "coco"
    assert {a["category_id"] for d in inst for a in d["annotations"]} <= set(range(5))

    kps = DatasetCatalog.get("shapes_val_keypoints")
    assert all(len(a["keypoints"]) == 15 for d in kps for a in d["annotations"])
    # detectron2 itself resolves our flip map: top stays, left/right tips swap.
    np.testing.assert_array_equal(create_keypoint_hflip_indices(["shapes_val_keypoints"]),
                                  [0, 4, 3, 2, 1])

    depth = DatasetCatalog.get("shapes_val_depth")
    assert MetadataCatalog.get("shapes_val_depth").evaluator_type == "depth"
    assert len(depth) == n_val
    d = depth[0]
    assert d["depth_scale"] == 1000 and d["max_depth"] >= 40
    assert np.asarray(Image.open(d["depth_file_name"])).max() / d["depth_scale"] <= d["max_depth"]

    refs = DatasetCatalog.get("shapes_val_refexp")
    assert MetadataCatalog.get("shapes_val_refexp").evaluator_type == "refer"
    inst_by_id = {a["id"]: a for a in _ann(shapes_root, "instances_val.json")["annotations"]}
    for r in refs:
        (obj,) = r["annotations"]
        assert r["sentences"] and all(isinstance(s, str) for s in r["sentences"])
        assert THINGS[obj["category_id"]] in r["sentences"][0]
        np.testing.assert_array_equal(mask_util.decode(obj["segmentation"]),
                                      mask_util.decode(inst_by_id[r["ann_id"]]["segmentation"]))


def test_generic_loader_reports_bad_input(tmp_path, tiny_root):
    meta = get_panoptic_metadata(_ann(tiny_root, "panoptic_val.json")["categories"])
    ann = tiny_root / "annotations"
    image_root = str(tiny_root / "images" / "val")
    args = (image_root, str(ann / "panoptic_val"), str(ann / "panoptic_semseg_val"), meta)
    with pytest.raises(FileNotFoundError, match="Panoptic json"):
        load_panoptic_json_with_sem_seg(str(tmp_path / "missing.json"), *args)
    bad = _json(ann / "panoptic_val.json")
    bad["annotations"][0]["segments_info"][0]["category_id"] = 999
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="Unknown category_id 999"):
        load_panoptic_json_with_sem_seg(str(tmp_path / "bad.json"), *args)
    with pytest.raises(FileNotFoundError, match="file_name"):
        load_panoptic_json_with_sem_seg(str(ann / "panoptic_val.json"), str(tmp_path), *args[1:])
    with pytest.raises(ValueError, match="lacks the keys"):
        get_panoptic_metadata([{"id": 1, "name": "circle"}])
