"""ClipWrapper: ODISE's preprocessing, the ln_post(CLS) @ proj prefix against a hand-written ViT
pass, text encoding, checkpoint loading and its errors, QuickGELU for OpenAI models."""
import pytest
import torch
import torch.nn.functional as F

from odise_ext.odise.clip import CLIP_MEAN, CLIP_STD, build_clip, build_open_clip_model

from conftest import make_cfg

TINY = "configs/testing/base_tiny_diffusion.yaml"


def tiny_cfg(*opts):
    return make_cfg(TINY, *opts)


@pytest.fixture(scope="module")
def clip():
    return build_clip(tiny_cfg())


def test_frozen_and_not_checkpointed(clip):
    assert all(not p.requires_grad for p in clip.parameters())
    assert list(clip.state_dict()) == ["model._extra_state"]
    clip.train()
    assert not clip.visual.training


def test_preprocess_resizes_short_side_then_centre_crops(clip):
    x = torch.rand(2, 3, 48, 80)
    out = clip.preprocess(x)
    # short side 48 -> 32, long side 80 -> 53, centre crop of width 32 starts at (53 - 32) // 2.
    ref = F.interpolate(x, size=(32, 53), mode="bicubic", align_corners=False)[:, :, :, 10:42]
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (ref - mean) / std)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        clip.preprocess(torch.rand(3, 32, 32))


def test_prefix_is_projected_cls_without_normalisation(clip):
    images = torch.rand(2, 3, 64, 64)
    v = clip.visual
    with torch.no_grad():
        x = F.interpolate(images, size=(32, 32), mode="bicubic", align_corners=False)
        x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        tokens = v.conv1(x).flatten(2).transpose(1, 2)  # [2, 16, 32]
        cls = v.class_embedding.view(1, 1, -1).expand(2, 1, -1)
        h = v.ln_pre(torch.cat([cls, tokens], dim=1) + v.positional_embedding)
        for block in v.transformer.resblocks:
            y = block.ln_1(h)
            h = h + block.attn(y, y, y, need_weights=False)[0]
            h = h + block.mlp(block.ln_2(h))
        ref = v.ln_post(h[:, 0]) @ v.proj
        out = clip.encode_image_prefix(images)
    assert out.shape == (2, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out.norm(dim=-1), torch.ones(2))


def test_encode_text_and_tokenizer(clip):
    ids = clip.tokenize(["", "a cat"])
    assert ids.shape == (2, 77)
    assert ids[0, :3].tolist() == [49406, 49407, 0]
    assert ids[1, :4].tolist() == [49406, 320, 2368, 49407]
    emb = clip.encode_text(["", "a cat", "a cat"])
    assert emb.shape == (3, 32)
    torch.testing.assert_close(emb[1], emb[2])
    assert not torch.allclose(emb[0], emb[1])


def test_checkpoint_round_trip_and_errors(clip, tmp_path):
    path = tmp_path / "clip.bin"
    state = {"module." + k: v for k, v in clip.clip.state_dict().items()}  # DDP-style prefix
    torch.save({"state_dict": state}, str(path))
    loaded = build_clip(tiny_cfg("MODEL.CLIP.WEIGHTS", str(path), "MODEL.CLIP.RANDOM_INIT_SEED", 5))
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded.encode_image_prefix(x), clip.encode_image_prefix(x))
    assert loaded.model.source["weights"] == str(path)

    with pytest.raises(FileNotFoundError, match="missing.bin"):
        build_clip(tiny_cfg("MODEL.CLIP.WEIGHTS", str(tmp_path / "missing.bin")))
    with pytest.raises(ValueError, match="MODEL.CLIP.WEIGHTS is empty"):
        build_clip(tiny_cfg("MODEL.CLIP.WEIGHTS", ""))
    with pytest.raises(ValueError, match=r"clip\.bin.*does not match the configured CLIP arch"):
        build_clip(tiny_cfg("MODEL.CLIP.WEIGHTS", str(path), "MODEL.CLIP.CUSTOM.VISION_WIDTH", 64))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt.*open_clip state dict"):
        build_clip(tiny_cfg("MODEL.CLIP.WEIGHTS", str(junk)))


def test_named_openai_model_uses_quick_gelu():
    cfg = tiny_cfg("MODEL.CLIP.NAME", "ViT-L-14-336", "MODEL.CLIP.QUICK_GELU", True)
    with torch.device("meta"):
        model = build_open_clip_model(cfg)
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert model.visual.image_size == (336, 336) and model.text_projection.shape == (768, 768)
    with pytest.raises(ValueError, match="not an open_clip model config"):
        build_open_clip_model(tiny_cfg("MODEL.CLIP.NAME", "ViT-Nope"))
