"""The tiny ODISE model end to end on the embedded shapes dataset."""
import copy

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model

import odise_ext  # noqa: F401
import odise_ext.data  # noqa: F401
import odise_ext  # noqa: F401
from odise_ext.config import setup_cfg
from odise_ext.data.build import build_dataset_mapper
from odise_ext.engine.optimizer import build_optimizer
from odise_ext.odise.open_vocab.vocabulary import parse_vocabulary

CFG = "configs/testing/odise_tiny.yaml"


@pytest.fixture(scope="module")
def cfg():
    return setup_cfg(CFG, ["MODEL.DEVICE", "cpu"])


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.fixture(scope="module")
def train_batch(cfg):
    mapper = build_dataset_mapper(cfg, is_train=True)
    dicts = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
    return [mapper(d) for d in dicts[:2]]


def _frozen_named(model):
    return {n: p for n, p in model.named_parameters() if not p.requires_grad}


def test_train_steps_lower_the_loss_and_leave_frozen_weights_alone(cfg, model, train_batch):
    frozen_before = {n: p.detach().clone() for n, p in _frozen_named(model).items()}
    assert any(n.startswith("backbone.feature_extractor.unet") or ".unet." in n for n in frozen_before)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any("prompt" in n for n in trainable), "the implicit captioner must be trainable"
    opt = build_optimizer(cfg, model)
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in optimized for p in _frozen_named(model).values())
    model.train()
    totals = []
    for _ in range(4):
        losses = model(train_batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert totals[-1] < totals[0], totals
    for n, p in _frozen_named(model).items():
        assert p.grad is None, n
        assert torch.equal(p, frozen_before[n]), n
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert any("prompt" in n for n in changed), "gradients must flow through the UNet into the captioner"
    assert any("class_embed" in n for n in changed)


def test_inference_and_vocabulary_change(cfg, model):
    model.eval()
    mapper = build_dataset_mapper(cfg, is_train=False)
    d = DatasetCatalog.get(cfg.DATASETS.TEST[0])[0]
    inputs = [mapper(d)]
    k = len(MetadataCatalog.get(cfg.DATASETS.TEST[0]).stuff_classes)
    with torch.no_grad():
        out = model(inputs)[0]
    h, w = inputs[0].get("height", inputs[0]["image"].shape[1]), inputs[0].get("width", inputs[0]["image"].shape[2])
    assert out["sem_seg"].shape == (k, h, w)
    seg, info = out["panoptic_seg"]
    assert seg.shape == (h, w)
    assert all(0 <= s["category_id"] < k for s in info)

    misses = model.text_cache.misses
    model.set_test_vocabulary(parse_vocabulary("circle;square,box;sky", thing_names=["circle", "square"]))
    try:
        with torch.no_grad():
            out3 = model(inputs)[0]
            model(inputs)
        assert out3["sem_seg"].shape[0] == 3
        # label + CLIP templates computed once each for the new vocabulary, then cached
        assert model.text_cache.misses == misses + 2
        assert model.test_vocabulary.seen_mask(model.train_vocabulary) == [True, True, True]
        model.set_test_vocabulary(parse_vocabulary("circle;dog"))
        assert model.test_vocabulary.seen_mask(model.train_vocabulary) == [True, False]
    finally:
        model.set_test_vocabulary(odise_ext.odise.open_vocab.Vocabulary.from_metadata(MetadataCatalog.get(cfg.DATASETS.TEST[0])))


def test_clip_ensemble_changes_scores_and_can_be_switched_off(cfg, model):
    model.eval()
    mapper = build_dataset_mapper(cfg, is_train=False)
    inputs = [mapper(DatasetCatalog.get(cfg.DATASETS.TEST[0])[1])]
    with torch.no_grad():
        fused = model(inputs)[0]["sem_seg"]
        model.clip_ensemble = False
        try:
            plain = model(inputs)[0]["sem_seg"]
        finally:
            model.clip_ensemble = True
    assert not torch.allclose(fused, plain)


def test_state_dict_holds_trainable_weights_only(model):
    keys = list(model.state_dict())
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and not any(k in keys for k in frozen)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n in keys for n in trainable)


def test_caption_model_adds_grounding_losses(cfg):
    ccfg = setup_cfg(CFG, ["MODEL.ODISE.CAPTION.ENABLED", "True", "DATASETS.TRAIN", '("shapes_train_panoptic_caption_with_sem_seg",)',
                            "MODEL.MASK_FORMER.NUM_DECODER_LAYERS", "1"])
    torch.manual_seed(0)
    m = build_model(ccfg).train()
    mapper = build_dataset_mapper(ccfg, is_train=True)
    batch = [mapper(d) for d in DatasetCatalog.get(ccfg.DATASETS.TRAIN[0])[:2]]
    assert len(batch[0]["caption_phrases"]) == ccfg.MODEL.ODISE.CAPTION.NUM_PHRASES
    losses = m(batch)
    cap = [k for k in losses if k.startswith("loss_caption")]
    assert len(cap) == 2  # one per decoder output (1 layer + initial queries)
    sum(losses[k] for k in cap).backward()
    assert m.class_head.category_head.text_proj.weight.grad.abs().sum() > 0

    no_caps = [copy.deepcopy(x) for x in batch]
    for x in no_caps:
        x.pop("caption_phrases")
    with pytest.raises(ValueError, match="caption_phrases"):
        m(no_caps)


def test_bad_image_is_a_clear_error(model):
    model.eval()
    with pytest.raises(ValueError, match="RGB"):
        model([{"image": torch.zeros(1, 64, 64, dtype=torch.uint8)}])


def test_preprocess_image_uses_pixel_mean_and_std(cfg, model):
    """ODISE's configs say PIXEL_MEAN 0 / PIXEL_STD 255: the reference's x / 255; other values
    are honoured, not ignored."""
    image = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    images = model.preprocess_image([{"image": image}])
    assert images.tensor.shape[-2] >= 30 and images.tensor.shape[-1] >= 40
    assert torch.equal(images.tensor[0, :, :30, :40], image.float() / 255.0)
    assert images.tensor[0, :, 30:].abs().sum() == 0 and images.tensor[0, :, :, 40:].abs().sum() == 0
    other = copy.deepcopy(cfg)
    other.defrost()
    other.MODEL.PIXEL_MEAN, other.MODEL.PIXEL_STD = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
    torch.manual_seed(0)
    shifted = build_model(other).preprocess_image([{"image": image}]).tensor[0, :, :30, :40]
    mean, std = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1), torch.tensor([2.0, 4.0, 8.0]).view(3, 1, 1)
    assert torch.allclose(shifted, (image.float() - mean) / std)


def test_class_head_and_backbone_names_are_read(cfg):
    other = copy.deepcopy(cfg)
    other.defrost()
    other.MODEL.MASK_FORMER.CLASS_HEAD_NAME = "LinearClassHead"
    with pytest.raises(TypeError, match="CLASS_HEAD_NAME must be 'OpenVocabClassHead'"):
        build_model(other)
    other.MODEL.MASK_FORMER.CLASS_HEAD_NAME = "OpenVocabClassHead"
    other.MODEL.BACKBONE.NAME = "DiffusionBackbone"  # the core, without ODISE's windows
    assert type(build_model(other).backbone).__name__ == "DiffusionBackbone"
    assert type(build_model(cfg).backbone).__name__ == "WindowedDiffusionBackbone"
