"""Evaluating ODISE with a custom test vocabulary (MODEL.ODISE.TEST_VOCABULARY): predictions are
mapped to the dataset's ids by class name, or the run is refused before any inference."""
import copy

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Instances

from odise_ext.odise.vocabulary_remap import VocabularyRemapEvaluator, vocabulary_to_dataset
from odise_ext.odise.open_vocab.vocabulary import (
    Vocabulary,
    dataset_vocabulary,
    match_classes,
    parse_vocabulary,
)

DATASET = "shapes_val_panoptic_with_sem_seg"
NAMES = ["circle", "square", "triangle", "ring", "star", "sky", "grass", "water", "sand"]  # dataset order
PERMUTED = ["sand", "star", "sky", "circle", "water", "ring", "grass", "triangle", "square"]


def _meta():
    return MetadataCatalog.get(DATASET)


def test_match_classes_by_name_and_synonym():
    dataset = Vocabulary((("person", "child"), ("sky",), ("dog", "puppy")), (0, 2))
    vocab = parse_vocabulary("Puppy;SKY;tree;kid,child")
    assert match_classes(vocab, dataset) == (2, 1, None, 0)
    with pytest.raises(ValueError, match="both name the dataset class 'person'"):
        match_classes(parse_vocabulary("person;child"), dataset)
    shared = Vocabulary((("wall", "partition"), ("fence", "partition")))
    with pytest.raises(ValueError, match="ambiguous"):
        match_classes(parse_vocabulary("partition"), shared)
    assert match_classes(parse_vocabulary("partition"), shared, strict=False) == (None,)
    # a display name wins over a synonym of another class
    assert match_classes(parse_vocabulary("wall"), Vocabulary((("fence", "wall"), ("wall",)))) == (1,)


def test_things_come_from_the_dataset(shapes_root):
    vocab = parse_vocabulary(";".join(PERMUTED + ["tree"])).with_things_from(dataset_vocabulary(_meta()))
    things = {vocab.names[i] for i in vocab.thing_ids}
    assert things == {"circle", "square", "triangle", "ring", "star", "tree"}  # tree: not in the dataset


def test_which_vocabularies_are_refused(shapes_root):
    meta = _meta()
    own = parse_vocabulary(";".join(NAMES)).with_things_from(dataset_vocabulary(meta))
    assert vocabulary_to_dataset(own, meta, check_things=True) is None  # nothing to convert
    perm = parse_vocabulary(";".join(PERMUTED)).with_things_from(dataset_vocabulary(meta))
    assert list(vocabulary_to_dataset(perm, meta, check_things=True)) == [NAMES.index(n) for n in PERMUTED]
    with pytest.raises(ValueError, match=r"lacks 4 of the 9 classes .*\(ring, grass, water, sand\)"):
        vocabulary_to_dataset(parse_vocabulary("circle;square;triangle;star;sky"), meta, check_things=False)
    all_things = parse_vocabulary(";".join(NAMES))  # every class a thing, as the run had it
    with pytest.raises(ValueError, match=r"thing/stuff flags .*'sky', 'grass', 'water', 'sand'"):
        vocabulary_to_dataset(all_things, meta, check_things=True)
    assert vocabulary_to_dataset(all_things, meta, check_things=False) is None  # semantic: names only


def test_remap_converts_each_output_kind():
    # vocabulary: 0 = extra class, 1 = dataset 2 (thing), 2 = dataset 0 (stuff), 3 = dataset 1 (thing)
    ev = VocabularyRemapEvaluator(None, [None, 2, 0, 1], thing_ids=[1, 2])
    seg = torch.tensor([[1, 1, 2], [3, 3, 0]], dtype=torch.int32)
    info = [{"id": 1, "category_id": 0, "isthing": True}, {"id": 2, "category_id": 1, "isthing": True},
            {"id": 3, "category_id": 2, "isthing": False}]
    sem = torch.arange(4.0).view(4, 1, 1).expand(4, 2, 3)
    inst = Instances((2, 3), pred_classes=torch.tensor([0, 3, 2, 1]), scores=torch.tensor([0.9, 0.8, 0.7, 0.6]))
    out = ev.convert({"panoptic_seg": (seg, copy.deepcopy(info)), "sem_seg": sem, "instances": inst})
    new_seg, new_info = out["panoptic_seg"]
    assert new_seg.tolist() == [[0, 0, 2], [3, 3, 0]]  # the extra class's segment is void
    assert new_info == [{"id": 2, "category_id": 2, "isthing": True}, {"id": 3, "category_id": 0, "isthing": False}]
    assert seg.tolist() == [[1, 1, 2], [3, 3, 0]]  # the model's output is left alone
    assert out["sem_seg"][:, 0, 0].tolist() == [2.0, 3.0, 1.0]  # dataset channel j = vocabulary channel
    # instances: the extra class and the stuff class are dropped, the others renumbered
    assert out["instances"].pred_classes.tolist() == [1, 2]
    assert out["instances"].scores.tolist() == pytest.approx([0.8, 0.6])


@pytest.fixture(scope="module")
def model_and_cfg(shapes_root, tmp_path_factory):
    from odise_ext.config import setup_cfg
    from odise_ext.engine import Trainer

    cfg = setup_cfg("configs/testing/odise_tiny.yaml", [
        "OUTPUT_DIR", str(tmp_path_factory.mktemp("vocab_eval")),
        "MODEL.ODISE.TEST_VOCABULARY", ";".join(PERMUTED),  # the config path the issue took
    ])
    torch.manual_seed(0)
    model = Trainer.build_model(cfg).eval()
    return model, cfg


def _forward(model, vocab, n=3):
    from detectron2.data import detection_utils as utils

    model.set_test_vocabulary(vocab)
    outs = []
    for d in DatasetCatalog.get(DATASET)[:n]:
        img = utils.read_image(d["file_name"], format="RGB")
        with torch.no_grad():
            outs.append(model([{"image": torch.as_tensor(img.transpose(2, 0, 1).copy())}])[0])
    return outs


def test_permuted_vocabulary_predicts_the_same_after_mapping(model_and_cfg):
    model, cfg = model_and_cfg
    meta = _meta()
    permuted = model.test_vocabulary
    assert permuted.names == PERMUTED
    assert {permuted.names[i] for i in permuted.thing_ids} == set(NAMES[:5])
    to_dataset = vocabulary_to_dataset(permuted, meta, check_things=True)
    remap = VocabularyRemapEvaluator(None, to_dataset, dataset_vocabulary(meta).thing_ids)
    got = [remap.convert(o) for o in _forward(model, permuted)]
    ref = _forward(model, Vocabulary.from_metadata(meta))
    model.set_test_vocabulary(permuted)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g["sem_seg"], r["sem_seg"], rtol=1e-5, atol=1e-6)
        assert torch.equal(g["panoptic_seg"][0], r["panoptic_seg"][0])
        assert g["panoptic_seg"][1] == r["panoptic_seg"][1]
        # top-k is unsorted: compare the (score, class) pairs as sets
        pairs = [sorted(zip(o["instances"].scores.tolist(), o["instances"].pred_classes.tolist())) for o in (g, r)]
        assert [c for _, c in pairs[0]] == [c for _, c in pairs[1]]
        assert [s for s, _ in pairs[0]] == pytest.approx([s for s, _ in pairs[1]], rel=1e-5)


def test_evaluation_with_permuted_superset_and_subset(model_and_cfg):
    from odise_ext.engine import Trainer

    model, cfg = model_and_cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False  # instance AP adds time, not coverage here
    meta = _meta()
    model.set_test_vocabulary(Vocabulary.from_metadata(meta))
    ref = Trainer.test(cfg, model)
    model.set_test_vocabulary(parse_vocabulary(";".join(PERMUTED)).with_things_from(dataset_vocabulary(meta)))
    perm = Trainer.test(cfg, model)
    # same scores up to float summation order (a rare argmax flip moves mIoU by ~1e-5)
    assert perm["sem_seg"]["mIoU"] == pytest.approx(ref["sem_seg"]["mIoU"], abs=1e-3)
    assert perm["sem_seg"]["mIoU"] > 0
    assert perm["panoptic_seg"] == pytest.approx(ref["panoptic_seg"], abs=1e-3)

    # a superset runs; its extra classes are scored nowhere (the dataset's 9 classes only)
    model.set_test_vocabulary(parse_vocabulary(";".join(PERMUTED + ["tree", "cloud"]), thing_names=NAMES[:5] + ["tree"]))
    sup = Trainer.test(cfg, model)
    assert sorted(k[4:] for k in sup["sem_seg"] if k.startswith("IoU-")) == sorted(NAMES)

    # a subset is refused before the first image goes through the model
    calls = []
    things = ["circle", "square", "triangle", "star"]
    model.set_test_vocabulary(parse_vocabulary("circle;square;triangle;star;sky", thing_names=things))
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="lacks 4 of the 9 classes"):
            Trainer.test(cfg, model)
    finally:
        handle.remove()
    assert calls == []


def test_instance_and_semantic_datasets(shapes_root):
    """Instance-only metadata (thing_classes) and semantic metadata (no thing map) match too."""
    nine = parse_vocabulary(";".join(PERMUTED), thing_names=NAMES[:5])
    inst = MetadataCatalog.get("shapes_val_instances")
    # its 5 thing classes are covered; the 4 stuff classes are extra (their detections dropped)
    assert list(vocabulary_to_dataset(nine, inst, check_things=True)) == [
        NAMES[:5].index(n) if n in NAMES[:5] else None for n in PERMUTED
    ]
    sem = MetadataCatalog.get("shapes_val_sem_seg")
    assert list(vocabulary_to_dataset(nine, sem, check_things=False)) == [NAMES.index(n) for n in PERMUTED]
