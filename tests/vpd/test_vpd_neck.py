"""The backbone contract through a neck: detectron2's FPN around VPDBackbone returns the same
``BackboneOutput`` (prompt, attention maps) and forwards the prompt inputs."""
import pytest
import torch
from detectron2.modeling.backbone.fpn import FPN

from odise_ext.diffusion import BackboneOutput
from odise_ext.diffusion.neck import PromptedFPN
from odise_ext.diffusion.prompts import SentenceTokens
from odise_ext.vpd import VPDBackbone, build_vpd_fpn_backbone

from conftest import make_cfg

IN_FEATURES = ["res3", "res4", "res5", "res6"]


def _fpn_around(cfg, fuse_type="sum"):
    bottom_up = VPDBackbone(cfg)
    return PromptedFPN(bottom_up=bottom_up, in_features=IN_FEATURES, out_channels=16, norm="", fuse_type=fuse_type)


@pytest.fixture(scope="module")
def sentence_fpn():
    torch.manual_seed(0)
    return _fpn_around(make_cfg("configs/testing/vpd_refer_tiny.yaml")).eval()


def test_fpn_output_keeps_prompt_and_attention_and_forwards_prompt_inputs(sentence_fpn):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    sentences = {"sentences": ["the yellow ring", "red square on the left"]}
    with torch.no_grad():
        out = sentence_fpn(images, sentences)
        direct = sentence_fpn.bottom_up(images, sentences)
        other = sentence_fpn(images, {"sentences": ["a blue star", "the sky"]})
    assert isinstance(out, BackboneOutput) and sorted(out) == ["p3", "p4", "p5", "p6"]
    assert out["p3"].shape == (2, 16, 8, 8) and out["p6"].shape == (2, 16, 1, 1)
    # the prompt the UNet saw: the sentence tokens of the given sentences
    assert isinstance(out.prompt.state, SentenceTokens) and out.prompt.state.features.shape[0] == 2
    assert torch.equal(out.prompt.context, direct.prompt.context)
    assert len(out.attention) == len(direct.attention) > 0
    assert all(torch.equal(a.probs, b.probs) for a, b in zip(out.attention, direct.attention))
    # the sentences reach the prompt module: other sentences, other features
    assert not torch.allclose(out["p3"], other["p3"])
    with pytest.raises(ValueError, match="sentences"):
        sentence_fpn(images)  # without prompt inputs the sentence prompt has nothing to encode
    assert sentence_fpn.prompt is sentence_fpn.bottom_up.feature_extractor.prompt


@pytest.mark.parametrize("fuse_type", ["sum", "avg"])
def test_fpn_top_down_equals_detectron2_fpn(fuse_type):
    """Oracle: detectron2's own FPN.forward on the same modules (class-name prompts need no inputs)."""
    torch.manual_seed(0)
    cfg = make_cfg("configs/testing/vpd_semseg_tiny.yaml", "MODEL.VPD.PROMPT.CLASS_NAMES", ["circle", "sky"])
    fpn = _fpn_around(cfg, fuse_type).eval()
    images = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = fpn(images)
        reference = FPN.forward(fpn, images)
    assert sorted(ours) == sorted(reference)
    for name in reference:
        assert torch.equal(ours[name], reference[name]), name
    assert ours.prompt is not None and len(ours.attention) > 0


def test_vpd_fpn_backbone_is_the_prompted_fpn():
    torch.manual_seed(0)
    cfg = make_cfg("configs/testing/vpd_semseg_tiny.yaml", "MODEL.VPD.PROMPT.CLASS_NAMES", ["circle", "sky"])
    backbone = build_vpd_fpn_backbone(cfg)
    assert isinstance(backbone, PromptedFPN)
    # the released VPD segmentation checkpoint's names (converter rules: fpn_lateral / bottom_up)
    keys = set(backbone.state_dict())
    assert {"fpn_lateral3.weight", "fpn_output6.weight"} <= keys
    assert any(k.startswith("bottom_up.feature_extractor.prompt.") for k in keys)
