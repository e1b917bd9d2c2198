"""Dataset files: 16-bit values survive the mappers, labels outside the classes and undecodable
images are named, and undecodable training images are skipped deterministically (resume-exact)."""
import os

import numpy as np
import pytest
from detectron2.data import MetadataCatalog
from detectron2.data.samplers import TrainingSampler
from PIL import Image

from odise_ext.data.image_io import read_image
from odise_ext.data.resumable import PositionedSampleStream, ResumableBatches
from odise_ext.data.validation import check_dataset_dicts

TINY_SEMSEG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../configs/testing/vpd_semseg_tiny.yaml")


def _png16(path, value, shape=(6, 8)):
    Image.fromarray(np.full(shape, value, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    return str(path)


def test_16bit_label_and_image_values_survive_the_default_mapper(tmp_path):
    from odise_ext.data.dataset_mapper import ImageIODatasetMapper

    mapper = ImageIODatasetMapper(is_train=False, augmentations=[], image_format="RGB")
    d = {"file_name": _png16(tmp_path / "img.png", 40000), "sem_seg_file_name": _png16(tmp_path / "lab.png", 40000),
         "height": 6, "width": 8}
    out = mapper(d)
    assert out["sem_seg"].dtype.is_floating_point is False
    assert (out["sem_seg"] == 40000).all()  # exact, not saturated to 255
    assert (out["image"] == round(40000 / 257)).all() and round(40000 / 257) == 156  # scaled, not 255


def test_16bit_depth_keeps_full_precision_through_the_depth_mapper(tmp_path):
    from odise_ext.dense.mappers.depth import DepthMapper

    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (8, 6), (1, 2, 3)).save(rgb)
    mapper = DepthMapper(is_train=False, augmentations=[], image_format="RGB", max_depth=1e6, use_kb_crop=False)
    out = mapper({"file_name": str(rgb), "depth_file_name": _png16(tmp_path / "d.png", 40001), "depth_scale": 1000.0})
    assert out["depth"].dtype.is_floating_point and np.allclose(out["depth"].numpy(), 40.001, rtol=0, atol=1e-5)


def test_16bit_panoptic_png_is_refused_by_the_panoptic_mapper(tmp_path):
    from odise_ext.odise.dataset_mapper import PanopticLSJMapper

    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (8, 6)).save(rgb)
    mapper = PanopticLSJMapper(augmentations=[], image_format="RGB")
    d = {"file_name": str(rgb), "pan_seg_file_name": _png16(tmp_path / "pan.png", 40000), "segments_info": [],
         "image_id": 3}
    with pytest.raises(ValueError, match="pan.png' is a 16/32-bit one-channel image"):
        mapper(d)


def _label_dataset(tmp_path, value):
    name = f"labels_{tmp_path.name}_{value}"
    MetadataCatalog.get(name).set(stuff_classes=["a", "b", "c"], ignore_label=255)
    img = tmp_path / "i.png"
    Image.new("RGB", (10, 10)).save(img)
    lab = tmp_path / f"l{value}.png"
    Image.fromarray(np.array([[0, 2, value] * 3 + [255]] * 10, np.uint8)).save(lab)
    return name, {"file_name": str(img), "sem_seg_file_name": str(lab), "image_id": 7}


def test_label_outside_the_classes_is_named_by_the_evaluator_and_the_check(tmp_path):
    from odise_ext.engine.evaluators import load_sem_seg_gt

    name, d = _label_dataset(tmp_path, 250)
    with pytest.raises(ValueError) as e:
        load_sem_seg_gt(d["sem_seg_file_name"], dataset_name=name)
    assert d["sem_seg_file_name"] in str(e.value) and "[250]" in str(e.value) and "outside 0..2" in str(e.value)
    with pytest.raises(ValueError, match=r"record #0 record \(image_id=7\): sem_seg_file_name .*\[250\]"):
        check_dataset_dicts([d], name, level="full", skip_bad=False)
    name, d = _label_dataset(tmp_path, 1)  # in range, plus the ignore label: accepted
    assert load_sem_seg_gt(d["sem_seg_file_name"], dataset_name=name).max() == 255
    assert check_dataset_dicts([d], name, level="full", skip_bad=False) == [d]


def _cut_jpeg(path):
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (32, 32, 3), np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:-400])
    return str(path)


def test_truncated_image_is_named_by_the_files_level_check(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (32, 32)).save(good)
    good.write_bytes(good.read_bytes() + b"trailer")  # data after the end marker is fine
    dicts = [{"file_name": str(good), "image_id": 1}, {"file_name": _cut_jpeg(tmp_path / "cut.jpg"), "image_id": 2}]
    assert Image.open(dicts[1]["file_name"]).size == (32, 32)  # the header alone looks fine
    with pytest.raises(ValueError, match=r"record #1 record \(image_id=2\): file_name cannot be decoded .*cut.jpg"):
        check_dataset_dicts(dicts, "cut", level="files", skip_bad=False)
    assert check_dataset_dicts(dicts[:1], "cut", level="files", skip_bad=False) == dicts[:1]


def _image_dataset(tmp_path, bad=(4,)):
    items = []
    for i in range(9):
        p = tmp_path / f"{i}.jpg"
        if i in bad:
            _cut_jpeg(p)
        else:
            Image.new("RGB", (8 + i % 2, 8), (i, i, i)).save(p)
        items.append({"file_name": str(p), "id": i})
    return items


def _mapper(d):
    image = read_image(d["file_name"], "RGB")
    return {"id": d["id"], "width": image.shape[1], "height": image.shape[0], "noise": float(np.random.rand())}


def _batches(items, state=None, max_bad=10):
    stream = PositionedSampleStream(items, TrainingSampler(len(items), seed=3), _mapper, seed=3)
    b = ResumableBatches(stream, 2, aspect_ratio_grouping=True, num_workers=0, max_bad_samples=max_bad)
    if state is not None:
        b.load_state_dict(state)
    return b


def _take(it, n):
    return [[(d["id"], d["noise"]) for d in next(it)] for _ in range(n)]


def test_undecodable_training_image_is_skipped_counted_and_resume_passes_it(tmp_path):
    items = _image_dataset(tmp_path)
    full = _batches(items)
    reference = _take(iter(full), 12)
    assert all(i != 4 for batch in reference for i, _ in batch)  # replaced, never trained on
    assert list(full.bad_samples) == [4] and "4.jpg" in full.bad_samples[4]  # counted, file named
    for stop in range(1, 12):
        first = _batches(items)
        it = iter(first)
        head = _take(it, stop)
        state = first.state_dict()
        resumed = _batches(items, state)
        assert head + _take(iter(resumed), 12 - stop) == reference, f"resumed after {stop} batches"
    assert resumed.bad_samples == full.bad_samples  # the count carries over a resume


def test_too_many_undecodable_training_images_stop_with_their_list(tmp_path):
    items = _image_dataset(tmp_path, bad=(1, 4, 6))
    with pytest.raises(RuntimeError) as e:
        _take(iter(_batches(items, max_bad=1)), 12)
    msg = str(e.value)
    assert "DATA.MAX_BAD_SAMPLES=1" in msg and msg.count("cannot be decoded") >= 2


@pytest.mark.parametrize("value", [250, 3, 65534])
def test_training_mappers_name_a_label_outside_the_classes_when_read(tmp_path, value):
    """The default mapper and VPD's SemSegMapper (built from the tiny config, whose training set's
    metadata gives 3 classes and ignore 255) refuse a label value v >= 3, v != 255 (8 or 16-bit file):
    the error names the file, the record and the value, instead of a reshape error or a loss on it."""
    from odise_ext.config import setup_cfg
    from odise_ext.data.build import build_dataset_mapper
    from odise_ext.data.dataset_mapper import ImageIODatasetMapper

    name, d = _label_dataset(tmp_path, 250)  # 3 classes, ignore 255
    lab = np.array([[0, 2, value] * 3 + [255]] * 10, np.uint16 if value > 255 else np.uint8)
    Image.fromarray(lab).save(d["sem_seg_file_name"])
    cfg = setup_cfg(TINY_SEMSEG, ["DATASETS.TRAIN", f"('{name}',)", "INPUT.CROP.ENABLED", "False"])
    mappers = [ImageIODatasetMapper(cfg, True), build_dataset_mapper(cfg, True)]
    assert type(mappers[1]).__name__ == "SemSegMapper" and mappers[1].sem_seg_label_range == (3, 255)
    for mapper in mappers:
        with pytest.raises(ValueError) as e:
            mapper(dict(d, height=10, width=10))
        msg = str(e.value)
        assert d["sem_seg_file_name"] in msg and f"[{value}]" in msg and "image_id=7" in msg, msg
        assert "outside 0..2" in msg and "ignore label 255" in msg, msg
    Image.fromarray(np.where(lab == value, 1, lab).astype(np.uint8)).save(d["sem_seg_file_name"])
    for mapper in mappers:  # classes and the ignore label only: read exactly
        assert sorted(np.unique(mapper(dict(d, height=10, width=10))["sem_seg"].numpy()).tolist()) == [0, 1, 2, 255]


def test_label_range_is_unchecked_when_the_datasets_disagree_or_have_no_classes(tmp_path):
    from odise_ext.data.dataset_mapper import label_range_of

    a, _ = _label_dataset(tmp_path, 1)
    b = f"other_{tmp_path.name}"
    MetadataCatalog.get(b).set(stuff_classes=["a", "b"], ignore_label=255)
    assert label_range_of([a]) == (3, 255) and label_range_of([a, a]) == (3, 255)
    assert label_range_of([a, b]) is None and label_range_of([a, f"unregistered_{tmp_path.name}"]) is None
    from odise_ext.data.dataset_mapper import check_label_values

    d = {"sem_seg_file_name": "x.tif", "image_id": 1}
    check_label_values(np.array([[0, 2], [255, 1]]), 3, 255, d, "sem_seg_file_name")  # classes + ignore
    check_label_values(np.zeros((0, 4), np.int64), 3, 255, d, "sem_seg_file_name")  # empty map
    with pytest.raises(ValueError, match=r"x\.tif holds label values \[-2, 254\] outside 0\.\.2 .*image_id=1"):
        check_label_values(np.array([[0, -2], [254, 254]]), 3, 255, d, "sem_seg_file_name")
    with pytest.raises(ValueError, match=r"label values \[255\] outside 0\.\.2 that are not the ignore label None"):
        check_label_values(np.array([255]), 3, None, d, "sem_seg_file_name")
