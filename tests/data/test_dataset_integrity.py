"""No silently wrong dataset: records listed twice, missing JSON keys, labels outside the classes
and undecodable images are named (file and record); 16-bit files keep their values through the
mappers; undecodable training images are skipped the same way on every (resumed) run."""
import copy
import json

import pytest
from detectron2.data import MetadataCatalog

from odise_ext.data.datasets.json_records import check_coco_instances_json
from odise_ext.data.datasets.panoptic_sem_seg import load_panoptic_json_with_sem_seg
from odise_ext.data.datasets.register_png import load_png_narratives
from odise_ext.data.datasets.register_shapes import get_shapes_panoptic_metadata


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def _panoptic(shapes_root):
    return json.loads((shapes_root / "annotations" / "panoptic_val.json").read_text())


def _load_panoptic(shapes_root, json_file):
    ann = shapes_root / "annotations"
    return load_panoptic_json_with_sem_seg(json_file, str(shapes_root / "images" / "val"), str(ann / "panoptic_val"),
                                           str(ann / "panoptic_semseg_val"), get_shapes_panoptic_metadata(),
                                           image_ext=".jpg")


# ------------------------------------------------------------------------- records listed twice
def test_panoptic_annotation_listed_twice_is_refused_naming_both(shapes_root, tmp_path):
    info = _panoptic(shapes_root)
    n = len(info["annotations"])
    assert len(_load_panoptic(shapes_root, _write(tmp_path, "ok.json", info))) == n  # the clean file loads
    info["annotations"].append(copy.deepcopy(info["annotations"][3]))
    path = _write(tmp_path, "dup.json", info)
    with pytest.raises(ValueError) as e:
        _load_panoptic(shapes_root, path)
    msg = str(e.value)
    assert path in msg and f"annotations #3 and #{n}" in msg and "image_id" in msg


def test_panoptic_image_id_twice_is_refused(shapes_root, tmp_path):
    info = _panoptic(shapes_root)
    info["annotations"][5]["image_id"] = info["annotations"][1]["image_id"]
    path = _write(tmp_path, "dup_id.json", info)
    with pytest.raises(ValueError, match=r"annotations #1 and #5 have the same image_id"):
        _load_panoptic(shapes_root, path)


@pytest.mark.parametrize("key", ["segments_info", "file_name", "image_id"])
def test_panoptic_missing_key_names_file_and_record(key, shapes_root, tmp_path):
    info = _panoptic(shapes_root)
    del info["annotations"][2][key]
    path = _write(tmp_path, "missing.json", info)
    with pytest.raises(ValueError) as e:
        _load_panoptic(shapes_root, path)
    assert path in str(e.value) and "annotations #2" in str(e.value) and repr(key) in str(e.value)


def test_segment_key_missing_is_named(shapes_root, tmp_path):
    info = _panoptic(shapes_root)
    del info["annotations"][0]["segments_info"][1]["category_id"]
    with pytest.raises(ValueError, match=r"annotations #0 \(image_id .*\) segments_info #1 lacks the key\(s\) \['category_id'\]"):
        _load_panoptic(shapes_root, _write(tmp_path, "seg.json", info))


def _instances(shapes_root):
    return json.loads((shapes_root / "annotations" / "instances_val.json").read_text())


@pytest.mark.parametrize("edit, fragment", [
    (lambda i: i["images"].append(dict(i["images"][0], file_name="other.png")), "images #0 and #{n_img} have the same id"),
    (lambda i: i["annotations"].append(dict(i["annotations"][4], id=10 ** 9)),
     "annotations #4 and #{n_ann} have the same image, category and geometry"),
    (lambda i: i["annotations"].append(dict(i["annotations"][2], bbox=[0, 0, 1, 1])),
     "annotations #2 and #{n_ann} have the same id"),
    (lambda i: i["annotations"][3].pop("image_id"), "annotations #3 lacks the key(s) ['image_id']"),
    (lambda i: i["annotations"][3].update(image_id=-7), "has image_id -7, which is not in 'images'"),
], ids=["image_twice", "annotation_twice_new_id", "annotation_id_twice", "missing_image_id", "unknown_image"])
def test_coco_instances_json_problems_are_named(edit, fragment, shapes_root, tmp_path):
    info = _instances(shapes_root)
    check_coco_instances_json(_write(tmp_path, "clean.json", info))  # passes
    sizes = {"n_img": len(info["images"]), "n_ann": len(info["annotations"])}
    edit(info)
    path = _write(tmp_path, "bad.json", info)
    with pytest.raises(ValueError) as e:
        check_coco_instances_json(path)
    assert path in str(e.value) and fragment.format(**sizes) in str(e.value)


def test_instance_evaluator_refuses_a_ground_truth_with_an_image_twice(shapes_root, tmp_path):
    from odise_ext.config import get_odise_cfg
    from odise_ext.engine.evaluators import instance_evaluator

    info = _instances(shapes_root)
    info["images"].append(dict(info["images"][1], file_name="again.png"))
    path = _write(tmp_path, "gt.json", info)
    name = f"integrity_instances_{tmp_path.name}"
    MetadataCatalog.get(name).set(json_file=path, thing_classes=["a"], evaluator_type="coco")
    with pytest.raises(ValueError, match="images #1 and"):
        instance_evaluator(get_odise_cfg(), name, str(tmp_path / "out"))


def test_png_narrative_listed_twice_is_refused(shapes_root, tmp_path):
    ann = shapes_root / "annotations"
    narratives = json.loads((ann / "png_shapes_val.json").read_text())
    args = (ann / "panoptic_val.json", ann / "panoptic_val", shapes_root / "images" / "val")
    n = len(narratives)
    assert load_png_narratives(_write(tmp_path, "ok.json", narratives), *args)
    narratives.append(copy.deepcopy(narratives[2]))
    path = _write(tmp_path, "dup.json", narratives)
    with pytest.raises(ValueError) as e:
        load_png_narratives(path, *args)
    assert path in str(e.value) and f"narrative #2 and #{n}" in str(e.value)


def test_depth_entry_listed_twice_and_missing_key(tmp_path):
    from odise_ext.data.datasets.register_vpd import _load_depth

    entry = {"file_name": "a/rgb_1.jpg", "depth_file_name": "a/d_1.png"}
    _write(tmp_path, "idx.json", [entry, entry])
    with pytest.raises(ValueError, match=r"entry #0 and #1 have the same file_name 'a/rgb_1.jpg'"):
        _load_depth(str(tmp_path), "idx.json", 1000.0, 10.0)
    _write(tmp_path, "idx.json", [entry, {"file_name": "b.jpg"}])
    with pytest.raises(ValueError, match=r"idx.json: entry #1 lacks the key\(s\) \['depth_file_name'\]"):
        _load_depth(str(tmp_path), "idx.json", 1000.0, 10.0)
