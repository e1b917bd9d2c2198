"""PNG data: utterance location, CLIP token spans, the narrative loader and the dataset mapper."""
import copy
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from odise_ext.data.datasets.register_png import load_png_narratives
from odise_ext.data.phrases import CaptionTokenizer, locate_utterances

# ---------------------------------------------------------------- fixture dataset (one 8x8 image)

IMAGE_ID = 7
# segment id -> category id. The ids use all three PNG channels: 70000 = (112, 17, 1), 1000 = (232, 3, 0).
SKY, GRASS, CIRCLE, SQUARE_A, SQUARE_B = 70000, 3, 1000, 515, 5
CATEGORY_OF = {SKY: 10, GRASS: 11, CIRCLE: 1, SQUARE_A: 2, SQUARE_B: 2}
# listed unsorted on purpose: contiguous ids follow increasing dataset ids (1, 2, 10, 11 -> 0..3)
CATEGORIES = [
    {"id": 11, "name": "grass", "isthing": 0},
    {"id": 1, "name": "circle", "isthing": 1},
    {"id": 2, "name": "square", "isthing": 1},
    {"id": 10, "name": "sky", "isthing": 0},
]
CONTIGUOUS = {1: 0, 2: 1, 10: 2, 11: 3}


def _id_map():
    ids = np.full((8, 8), GRASS, dtype=np.int64)
    ids[:2] = SKY
    ids[3:5, 1:3] = CIRCLE
    ids[5:7, 4:6] = SQUARE_B
    ids[2:4, 5:8] = SQUARE_A
    return ids


def _utt(text, ids=(), noun=True, plural=False):
    return {"utterance": text, "segment_ids": [str(i) for i in ids], "plural": plural, "noun": noun}


def _narratives():
    return [
        {
            "image_id": str(IMAGE_ID),
            "annotator_id": 1,
            "caption": "In this picture we can see a circle, two squares above the grass and a square in the sky.",
            "segments": [
                _utt("In this picture"),  # a noun without segment: not evaluated
                _utt("we can see", noun=False),
                _utt("a circle", [CIRCLE], plural=True),  # json flag disagrees: 1 segment = singular
                _utt("two squares", [SQUARE_A, SQUARE_B], plural=False),  # 2 segments = plural
                _utt("above", noun=False),
                _utt("the grass", [GRASS]),
                _utt("and", noun=False),
                _utt("a  Square in the SKY", [SQUARE_B, SKY]),  # last segment is stuff
            ],
        },
        {
            "image_id": str(IMAGE_ID),
            "annotator_id": 2,
            "caption": "The sky and a square.",
            "segments": [_utt("The sky and a square", [SKY, SQUARE_A])],  # last segment is a thing
        },
        {  # no grounded phrase: skipped
            "image_id": str(IMAGE_ID),
            "annotator_id": 3,
            "caption": "Nothing here.",
            "segments": [_utt("Nothing here")],
        },
        {  # utterance not in the caption: skipped
            "image_id": str(IMAGE_ID),
            "annotator_id": 4,
            "caption": "a circle",
            "segments": [_utt("a triangle", [CIRCLE])],
        },
    ]


def _write_dataset(root, narratives=None):
    ids = _id_map()
    (root / "images").mkdir()
    (root / "panoptic").mkdir()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(root / "images" / f"{IMAGE_ID:012d}.jpg")
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(root / "panoptic" / f"{IMAGE_ID:012d}.png")
    order = [GRASS, SQUARE_A, SKY, CIRCLE, SQUARE_B]  # not the order in which narratives use them
    panoptic = {
        "images": [{"id": IMAGE_ID, "file_name": f"{IMAGE_ID:012d}.jpg", "height": 8, "width": 8}],
        "annotations": [
            {
                "image_id": IMAGE_ID,
                "file_name": f"{IMAGE_ID:012d}.png",
                "segments_info": [
                    {"id": s, "category_id": CATEGORY_OF[s], "iscrowd": 0, "area": int((ids == s).sum())} for s in order
                ],
            }
        ],
        "categories": CATEGORIES,
    }
    (root / "panoptic.json").write_text(json.dumps(panoptic))
    (root / "png.json").write_text(json.dumps(_narratives() if narratives is None else narratives))
    return root


def _load(root):
    return load_png_narratives(root / "png.json", root / "panoptic.json", root / "panoptic", root / "images")


@pytest.fixture
def dataset_root(tmp_path):
    return _write_dataset(tmp_path)


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer()


# ---------------------------------------------------------------- utterances and tokens


def test_locate_utterances():
    caption = "A dog  and two Cats, on grass."
    assert locate_utterances(caption, ["A dog", "and", "two cats", "on grass"]) == [(0, 5), (7, 10), (11, 19), (21, 29)]
    assert locate_utterances(caption, ["A dog", "", "and"]) == [(0, 5), (5, 5), (7, 10)]
    assert locate_utterances(caption, ["A dog", "on grass"]) is None  # would skip words
    assert locate_utterances(caption, ["and", "A dog"]) is None  # out of order
    assert locate_utterances(caption, ["A cat"]) is None


def test_token_spans_match_clip_bpe(tokenizer):
    from open_clip.tokenizer import SimpleTokenizer

    bpe = SimpleTokenizer()
    caption = "In this picture we can see a circle, two squares above the grass."
    phrases = ["a circle", "two squares", "the grass"]
    spans = [(caption.index(p), caption.index(p) + len(p)) for p in phrases]
    out = tokenizer(caption, spans)
    assert out.token_ids.tolist() == [bpe.sot_token_id] + bpe.encode(caption) + [bpe.eot_token_id]
    assert out.spans.shape == (3, 2)
    for phrase, (s, e) in zip(phrases, out.spans.tolist()):
        assert out.token_ids[s:e].tolist() == bpe.encode(phrase)
    with pytest.raises(ValueError, match="out of order"):
        tokenizer(caption, [spans[1], spans[0]])


# ---------------------------------------------------------------- loader


def test_loader_links_phrases_by_segment_id(dataset_root):
    dicts = _load(dataset_root)
    assert [(d["annotator_id"], d["narrative_index"]) for d in dicts] == [(1, 0), (2, 1)]  # 2 skipped
    d = dicts[0]
    assert d["image_id"] == IMAGE_ID and (d["height"], d["width"]) == (8, 8)
    assert d["file_name"].endswith(f"{IMAGE_ID:012d}.jpg") and d["pan_seg_file_name"].endswith(".png")
    got = [(p["text"], p["segment_ids"], p["plural"], p["isthing"], p["category_id"]) for p in d["phrases"]]
    assert got == [
        ("a circle", [CIRCLE], False, True, CONTIGUOUS[1]),
        ("two squares", [SQUARE_A, SQUARE_B], True, True, CONTIGUOUS[2]),
        ("the grass", [GRASS], False, False, CONTIGUOUS[11]),
        ("a  Square in the SKY", [SQUARE_B, SKY], True, False, CONTIGUOUS[10]),
    ]
    caption = d["caption"]
    assert [caption[slice(*p["char_span"])] for p in d["phrases"]] == [
        "a circle", "two squares", "the grass", "a square in the sky",
    ]
    (p,) = dicts[1]["phrases"]
    assert (p["isthing"], p["category_id"], p["plural"]) == (True, CONTIGUOUS[2], True)


def test_loader_sets_category_metadata(dataset_root):
    from detectron2.data import MetadataCatalog

    name = f"_test_png_fixture_{id(dataset_root)}"
    root = dataset_root
    load_png_narratives(root / "png.json", root / "panoptic.json", root / "panoptic", root / "images", dataset_name=name)
    meta = MetadataCatalog.get(name)
    assert meta.stuff_classes == ["circle", "square", "sky", "grass"]
    assert meta.thing_classes == ["circle", "square"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}
    assert meta.stuff_dataset_id_to_contiguous_id == CONTIGUOUS


@pytest.mark.parametrize(
    "edit, error, pattern",
    [
        (lambda n: n[0]["segments"][2].update(segment_ids=["999"]), ValueError, r"narrative #0.*\[999\]"),
        (lambda n: n[1].pop("caption"), ValueError, r"narrative #1.*missing key.*caption"),
        (lambda n: n[0]["segments"][3].pop("noun"), ValueError, r"narrative #0 .*, segment 3: missing key.*noun"),
        (lambda n: n[1].update(image_id="8"), ValueError, r"narrative #1.*image '8' has no annotation"),
        (lambda n: n[1]["segments"][0].update(segment_ids=["sky"]), ValueError, r"narrative #1.*numeric"),
    ],
)
def test_loader_rejects_malformed_narratives(tmp_path, edit, error, pattern):
    narratives = _narratives()
    edit(narratives)
    root = _write_dataset(tmp_path, narratives)
    with pytest.raises(error, match=pattern):
        _load(root)


def test_loader_missing_files(dataset_root):
    (dataset_root / "images" / f"{IMAGE_ID:012d}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"narrative #0.*image of image 7 not found"):
        _load(dataset_root)
    with pytest.raises(FileNotFoundError, match="PNG narratives json not found"):
        load_png_narratives(dataset_root / "nope.json", dataset_root / "panoptic.json", "", "")
    (dataset_root / "png.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="expected a json list"):
        _load(dataset_root)


# ---------------------------------------------------------------- mapper


def _mapper(tokenizer, size, is_train=False, max_phrases=0):
    from odise_ext.config.defaults import get_odise_cfg
    from odise_ext.png.dataset_mapper import PNGDatasetMapper

    cfg = get_odise_cfg()
    cfg.DATA.PNG.IMAGE_SIZE = size
    cfg.DATA.PNG.MAX_PHRASES_TRAIN = max_phrases
    cfg.INPUT.FORMAT = "RGB"
    return PNGDatasetMapper(cfg, is_train=is_train, tokenizer=tokenizer)


def test_mapper_masks_are_union_of_segments(dataset_root, tokenizer):
    d = _load(dataset_root)[0]
    ids = _id_map()
    expected = np.stack([np.isin(ids, p["segment_ids"]) for p in d["phrases"]])
    assert expected[1].sum() == (ids == SQUARE_A).sum() + (ids == SQUARE_B).sum()  # a real union

    out = _mapper(tokenizer, 8)(copy.deepcopy(d))
    assert out["image"].shape == (3, 8, 8) and out["image"].dtype == torch.uint8
    assert out["gt_masks"].dtype == torch.bool and np.array_equal(out["gt_masks"].numpy(), expected)
    assert out["plural"].tolist() == [False, True, False, True]
    assert out["is_thing"].tolist() == [True, True, False, False]
    assert out["phrase_classes"].tolist() == [0, 1, 3, 2]
    assert out["phrases"] == ["a circle", "two squares", "the grass", "a  Square in the SKY"]
    assert (out["height"], out["width"]) == (8, 8)

    # training, resizing 8 -> 16: nearest neighbour turns each pixel into a 2x2 block, like the image
    out = _mapper(tokenizer, 16, is_train=True)(copy.deepcopy(d))
    assert out["image"].shape == (3, 16, 16)
    assert np.array_equal(out["gt_masks"].numpy(), np.stack([np.kron(m, np.ones((2, 2), bool)) for m in expected]))
    # test time: the image is resized, the GT stays at the original resolution for the evaluator
    out = _mapper(tokenizer, 16)(copy.deepcopy(d))
    assert out["image"].shape == (3, 16, 16) and (out["height"], out["width"]) == (8, 8)
    assert np.array_equal(out["gt_masks"].numpy(), expected)


def test_mapper_token_spans_and_phrase_limit(dataset_root, tokenizer):
    d = _load(dataset_root)[0]
    out = _mapper(tokenizer, 8)(copy.deepcopy(d))
    for phrase, (s, e) in zip(out["phrases"], out["phrase_token_spans"].tolist()):
        assert out["caption_tokens"][s:e].tolist() == tokenizer.encode(phrase)
    train = _mapper(tokenizer, 8, is_train=True, max_phrases=2)(copy.deepcopy(d))
    assert train["phrases"] == ["a circle", "two squares"] and train["gt_masks"].shape == (2, 8, 8)
    test = _mapper(tokenizer, 8, is_train=False, max_phrases=2)(copy.deepcopy(d))
    assert len(test["phrases"]) == 4  # every phrase is an evaluation unit


def test_mapper_rejects_segment_absent_from_png(dataset_root, tokenizer):
    d = _load(dataset_root)[0]
    d["phrases"][0]["segment_ids"] = [4242]
    with pytest.raises(ValueError, match=r"image 7.*\[4242\] have no pixel"):
        _mapper(tokenizer, 8)(d)


def test_registration_is_lazy_and_idempotent(tmp_path):
    import odise_ext.data  # noqa: F401  (registers the datasets)
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from odise_ext.data.datasets.register_png import register_all_png

    register_all_png(str(tmp_path))  # already registered: a no-op, and nothing is read
    names = ["png_coco_train2017", "png_coco_val2017", "png_shapes_train", "png_shapes_val"]
    for name in names:
        assert name in DatasetCatalog.list() and MetadataCatalog.get(name).evaluator_type == "png"
    meta = MetadataCatalog.get("png_coco_val2017")
    if not os.path.isfile(meta.panoptic_json):
        with pytest.raises(FileNotFoundError, match="panoptic_val2017.json"):
            DatasetCatalog.get("png_coco_val2017")


# ---------------------------------------------------------------- the real shapes world


def test_png_shapes_val_end_to_end(shapes_root, tokenizer):
    """png_shapes_val from the generator: ids resolve, masks match the PNG, GT scores AR 99.999."""
    import odise_ext.data  # noqa: F401  (registers the datasets)
    from detectron2.data import DatasetCatalog
    from panopticapi.utils import rgb2id

    from odise_ext.png.evaluation import PNGEvaluator

    dicts = DatasetCatalog.get("png_shapes_val")
    assert len(dicts) > 0 and any(p["plural"] for d in dicts for p in d["phrases"])
    mapper = _mapper(tokenizer, 128)  # the generator's image size: masks must equal the PNG's
    # exact protocol: the GT itself as prediction is perfect (the official 256x256 round trip
    # would make both soft); distributed=True also works in a single process
    evaluator = PNGEvaluator("png_shapes_val", protocol="exact")
    for d in dicts[:6]:
        out = mapper(copy.deepcopy(d))
        pan = rgb2id(np.asarray(Image.open(d["pan_seg_file_name"]).convert("RGB")))
        for mask, p in zip(out["gt_masks"].numpy(), d["phrases"]):
            assert mask.any() and np.array_equal(mask, np.isin(pan, p["segment_ids"]))
        evaluator.process([out], [{"png_masks": out["gt_masks"].float()}])
    assert evaluator.evaluate()["png"]["AR"] == pytest.approx(99.999, abs=1e-6)


# ---------------------------------------------------------------- datasets/prepare_png.py


def _prepare_png_main():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "datasets" / "prepare_png.py"
    spec = importlib.util.spec_from_file_location("prepare_png", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_prepare_png_reports_missing_and_invalid(dataset_root, tmp_path, capsys):
    main = _prepare_png_main()
    coco = tmp_path / "d2" / "coco"
    (coco / "annotations").mkdir(parents=True)
    (dataset_root / "png.json").rename(coco / "annotations" / "png_coco_val2017.json")
    (dataset_root / "panoptic.json").rename(coco / "annotations" / "panoptic_val2017.json")
    (dataset_root / "panoptic").rename(coco / "panoptic_val2017")
    args = ["--root", str(tmp_path / "d2"), "--splits", "val", "--check-pixels"]

    assert main(args) == 1  # the images are not there yet
    err = capsys.readouterr().err
    assert f"MISSING {coco / 'val2017'}" in err and "val2017.zip" in err
    assert "png_coco_val2017.json" not in err  # present files are not reported

    (dataset_root / "images").rename(coco / "val2017")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "narratives kept: 2" in out and "plural phrases: 3" in out and "skipped: no grounded phrase: 1" in out

    narratives = _narratives()
    narratives[1]["segments"][0]["segment_ids"] = ["999"]
    (coco / "annotations" / "png_coco_val2017.json").write_text(json.dumps(narratives))
    assert main(args) == 1
    assert "narrative #1" in capsys.readouterr().err
