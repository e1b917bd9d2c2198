import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from panopticapi.utils import rgb2id

import odise_ext  # noqa: F401
import odise_ext.data  # noqa: F401
import odise_ext  # noqa: F401
from odise_ext.config import setup_cfg
from odise_ext.odise.dataset_mapper import PanopticLSJMapper
from detectron2.data import transforms as T


def test_identity_augmentation_reproduces_the_panoptic_segments(shapes_root):
    d = DatasetCatalog.get("shapes_val_panoptic_with_sem_seg")[0]
    h, w = read_image(d["file_name"]).shape[:2]
    mapper = PanopticLSJMapper(augmentations=[T.FixedSizeCrop(crop_size=(h + 16, w + 16))], num_phrases=3, seed=0)
    out = mapper(d)
    pan = rgb2id(read_image(d["pan_seg_file_name"], "RGB"))
    assert tuple(out["image"].shape) == (3, h + 16, w + 16)
    assert out["padding_mask"][:h, :w].sum() == 0 and out["padding_mask"][h:].all() and out["padding_mask"][:, w:].all()
    segs = [s for s in d["segments_info"] if not s.get("iscrowd", 0)]
    inst = out["instances"]
    assert inst.gt_classes.tolist() == [s["category_id"] for s in segs]
    for m, s in zip(inst.gt_masks, segs):
        assert np.array_equal(m[:h, :w].numpy(), pan == s["id"])
        assert not m[h:].any()


def test_lsj_output_size_flip_and_caption_phrases(shapes_root):
    cfg = setup_cfg("configs/testing/odise_tiny.yaml")
    d = DatasetCatalog.get("shapes_train_panoptic_caption_with_sem_seg")[0]
    mapper = PanopticLSJMapper(cfg, True)
    out = mapper(d)
    s = cfg.DATA.LSJ.IMAGE_SIZE
    assert tuple(out["image"].shape) == (3, s, s)
    assert out["instances"].gt_masks.shape[-2:] == (s, s)
    phrases = out["caption_phrases"]
    assert len(phrases) == cfg.MODEL.ODISE.CAPTION.NUM_PHRASES
    assert any(set(phrases) <= set(p) for p in d["caption_noun_phrases"])


def test_missing_phrases_is_an_error(shapes_root):
    d = dict(DatasetCatalog.get("shapes_train_panoptic_caption_with_sem_seg")[0])
    d["caption_noun_phrases"] = [[], []]
    mapper = PanopticLSJMapper(augmentations=[], num_phrases=2, seed=0)
    with pytest.raises(ValueError, match="noun phrases"):
        mapper(d)
