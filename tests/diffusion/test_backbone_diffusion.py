"""Diffusion backbones: shapes (tiny and, on the meta device, real SD v1), ODISE's windowed
backbone (batched windows vs. one window at a time), the core's one-call output (features, prompt,
attention), frozen weights (grads, optimizer, train mode, checkpoints), bf16."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.solver.build import get_default_optimizer_params

from odise_ext.diffusion import FrozenModule
from odise_ext.diffusion import DiffusionBackbone, build_diffusion_backbone
from odise_ext.odise.backbone import WindowedDiffusionBackbone

from conftest import make_cfg as shared_make_cfg

TINY = "configs/testing/base_tiny_diffusion.yaml"


def make_cfg(path=TINY, *opts):
    return shared_make_cfg(path, *opts)


WINDOWED = ("MODEL.BACKBONE.NAME", "WindowedDiffusionBackbone")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(make_cfg(TINY, *WINDOWED))


def _frozen_params(model):
    frozen = [m for m in model.modules() if isinstance(m, FrozenModule)]
    return [p for m in frozen for p in m.module.parameters()]


def test_output_shape_and_forward(backbone):
    shapes = backbone.output_shape()
    assert shapes == {f"res{k}": ShapeSpec(channels=64, stride=2**k) for k in (2, 3, 4, 5)}
    x = torch.rand(2, 3, 96, 128)
    out = backbone(x)
    for name, spec in shapes.items():
        assert out[name].shape == (2, 64, 96 // spec.stride, 128 // spec.stride)
    with pytest.raises(ValueError, match="divisible by 32"):
        backbone(torch.rand(1, 3, 80, 64))


@pytest.mark.parametrize(
    "batch, size, boxes",
    [
        # 96x128: side 96 < 128, windows resized 96 -> 128; the second one shifted to x = 32.
        (2, (96, 128), [(0, 96, 0, 96), (0, 96, 32, 128)]),
        # 160x192: side 128, no resize; both axes have a shifted last window.
        (
            1,
            (160, 192),
            [(0, 128, 0, 128), (0, 128, 64, 192), (32, 160, 0, 128), (32, 160, 64, 192)],
        ),
    ],
)
def test_batched_windows_equal_one_window_at_a_time(backbone, batch, size, boxes):
    """Reference: every window of every image through the extractor on its own, resize/project/
    sum per stride, pasted with a naive overlap count."""
    h, w = size
    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1))
    ext = backbone.feature_extractor
    strides = [4, 8, 32, 32, 16, 8, 8, 4]
    side = boxes[0][1] - boxes[0][0]
    with torch.no_grad():
        out = backbone(x)
        ref = {s: torch.zeros(batch, 64, h // s, w // s) for s in (4, 8, 16, 32)}
        cnt = {s: torch.zeros(h // s, w // s) for s in (4, 8, 16, 32)}
        for b in range(batch):
            for (y1, y2, x1, x2) in boxes:
                window = x[b : b + 1, :, y1:y2, x1:x2]
                if side != 128:
                    window = F.interpolate(
                        window, size=(128, 128), mode="bicubic", align_corners=False
                    )
                level = {}
                for f, s, proj in zip(ext(window), strides, backbone.feature_projections):
                    p = proj(F.interpolate(f, size=(side // s, side // s), mode="nearest"))
                    level[s] = level.get(s, 0) + p
                for s, p in level.items():
                    ref[s][b, :, y1 // s : y2 // s, x1 // s : x2 // s] += p[0]
                    if b == 0:
                        cnt[s][y1 // s : y2 // s, x1 // s : x2 // s] += 1
    for k, s in [(2, 4), (3, 8), (4, 16), (5, 32)]:
        # Batched convolutions sum in a different order than single-window ones.
        torch.testing.assert_close(out[f"res{k}"], ref[s] / cnt[s], rtol=1e-4, atol=1e-4)


def test_window_batch_runs_the_unet_once(backbone):
    calls = []
    unet = backbone.feature_extractor.unet.module
    h = unet.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape))
    try:
        backbone(torch.rand(2, 3, 96, 128))
    finally:
        h.remove()
    assert calls == [torch.Size([4, 4, 16, 16])]  # 2 images x 2 windows, one call


def test_captioner_can_share_an_existing_clip(backbone):
    clip = backbone.feature_extractor.prompt.clip
    other = build_diffusion_backbone(make_cfg(), clip=clip)
    assert other.feature_extractor.prompt.clip is clip


def test_frozen_weights_get_no_grad_but_captioner_does(backbone):
    prompt = backbone.feature_extractor.prompt
    with torch.no_grad():
        prompt.alpha_cond.fill_(0.5)
        prompt.alpha_cond_time_embed.fill_(0.5)
    try:
        backbone.zero_grad(set_to_none=True)
        out = backbone(torch.rand(1, 3, 64, 64))
        sum((v**2).mean() for v in out.values()).backward()
    finally:
        with torch.no_grad():
            prompt.alpha_cond.zero_()
            prompt.alpha_cond_time_embed.zero_()
    frozen = _frozen_params(backbone)
    assert len(frozen) > 100
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    # Gradients reach the captioner *through* the frozen UNet (cross-attention + time embedding).
    for name in ["alpha_cond", "alpha_cond_time_embed", "clip_project.linear.weight",
                 "clip_project.positional_embedding", "time_embed_project.linear.weight"]:
        g = prompt.get_parameter(name).grad
        assert g is not None and g.abs().sum() > 0, name
    assert backbone.feature_projections[2].conv1.weight.grad.abs().sum() > 0


def test_frozen_weights_not_in_optimizer_and_stay_in_eval(backbone):
    groups = get_default_optimizer_params(backbone)
    in_opt = {id(p) for g in groups for p in g["params"]}
    frozen = {id(p) for p in _frozen_params(backbone)}
    assert in_opt and not (in_opt & frozen)
    trainable = {id(p) for p in backbone.parameters() if p.requires_grad}
    assert in_opt == trainable
    backbone.train()
    try:
        frozen_modules = [m for m in backbone.modules() if isinstance(m, FrozenModule)]
        assert len(frozen_modules) == 3  # unet, vae, clip
        assert all(not m.training for f in frozen_modules for m in f.modules())
        assert backbone.feature_projections.training
    finally:
        backbone.eval()


def test_checkpoint_round_trip_without_frozen_weights(backbone, tmp_path):
    state = backbone.state_dict()
    frozen_keys = [k for k in state if ".module." in k]
    assert not frozen_keys
    extra = [k for k in state if k.endswith("_extra_state")]
    assert sorted(extra) == [
        "feature_extractor.prompt.clip.model._extra_state",
        "feature_extractor.unet._extra_state",
        "feature_extractor.vae._extra_state",
    ]
    assert len(state) < 150
    ckpt = DetectionCheckpointer(backbone, save_dir=str(tmp_path))
    ckpt.save("model_final")

    torch.manual_seed(123)  # different init of the trainable parts
    other = build_backbone(make_cfg(TINY, *WINDOWED))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(other(x)["res3"], backbone(x)["res3"])
        incompatible = DetectionCheckpointer(other)._load_model(
            torch.load(tmp_path / "model_final.pth", weights_only=True)
        )
        assert incompatible.missing_keys == [] and incompatible.unexpected_keys == []
        torch.testing.assert_close(other(x)["res3"], backbone(x)["res3"])


def test_checkpoint_from_other_frozen_source_warns(backbone, caplog):
    state = backbone.state_dict()
    other = build_backbone(make_cfg(TINY, "MODEL.DIFFUSION.RANDOM_INIT_SEED", 7))
    other.load_state_dict(state)
    assert "frozen weights from" in caplog.text and '"seed": 0' in caplog.text


def test_bf16_frozen_path_close_to_fp32(backbone):
    torch.manual_seed(0)
    cfg = make_cfg(TINY, "MODEL.DIFFUSION.DTYPE", "bfloat16", "MODEL.CLIP.DTYPE", "bfloat16")
    bf16 = build_backbone(cfg)
    bf16.load_state_dict(backbone.state_dict())
    assert bf16.feature_extractor.unet.module.conv_in.weight.dtype == torch.bfloat16
    assert bf16.feature_extractor.prompt.clip.visual.conv1.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.parameters() if p.requires_grad)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    prompts = [backbone.feature_extractor.prompt, bf16.feature_extractor.prompt]
    try:
        with torch.no_grad():
            for p in prompts:  # let the (bf16) CLIP prefix matter
                p.alpha_cond.fill_(0.5)
                p.alpha_cond_time_embed.fill_(0.5)
            t32 = backbone.feature_extractor(x)
        t16 = bf16.feature_extractor(x)
        # Taps come back as float32 for the float32 projections.
        for a, b in zip(t16, t32):
            assert a.dtype == torch.float32
            assert (a - b).norm() / b.norm() < 0.05
        t16[5].square().mean().backward()  # through the bf16 UNet into the fp32 captioner
        grad = prompts[1].alpha_cond.grad
        assert grad.dtype == torch.float32 and grad.abs().sum() > 0
    finally:
        with torch.no_grad():
            for p in prompts:
                p.alpha_cond.zero_()
                p.alpha_cond_time_embed.zero_()


def test_real_sd_v1_architecture_on_meta_device():
    random = ["MODEL.DIFFUSION.WEIGHTS", "random", "MODEL.CLIP.WEIGHTS", "random"]
    cfg = make_cfg("configs/base/sd_v1.yaml", *random)
    with torch.device("meta"):
        bb = build_backbone(cfg).to("meta")
    ext = bb.feature_extractor
    assert ext.tap_channels == [512, 512, 2560, 1920, 960, 640, 512, 512]
    expected = {f"res{k}": ShapeSpec(channels=512, stride=2**k) for k in (2, 3, 4, 5)}
    assert bb.output_shape() == expected
    x = torch.empty(1, 3, 512, 512, device="meta")
    taps = ext(x)
    assert [tuple(t.shape) for t in taps] == [
        (1, 512, 128, 128), (1, 512, 64, 64), (1, 2560, 8, 8), (1, 1920, 16, 16),
        (1, 960, 32, 32), (1, 640, 64, 64), (1, 512, 64, 64), (1, 512, 128, 128),
    ]
    out = bb(torch.empty(1, 3, 1024, 768, device="meta"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 512, 256, 192),
        "res3": (1, 512, 128, 96),
        "res4": (1, 512, 64, 48),
        "res5": (1, 512, 32, 24),
    }
    prompt = ext.prompt
    assert prompt.alpha_cond.shape == (1, 77, 768) and prompt.alpha_cond_time_embed.shape == (1280,)
    assert prompt.clip_project.positional_embedding.shape == (1, 77, 768)
    assert prompt.time_embed_project.linear.weight.shape == (1280, 768)
    assert prompt.clip.image_size == (336, 336)


def test_backbone_name_is_read_and_core_equals_windowed_on_one_window(backbone):
    """MODEL.BACKBONE.NAME picks the class; on an image of exactly the window size the windowed
    backbone cuts one window without resizing, so both give the same output from the same weights."""
    core = build_backbone(make_cfg())
    assert type(core) is DiffusionBackbone and type(backbone) is WindowedDiffusionBackbone
    core.load_state_dict(backbone.state_dict())
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = core(x), backbone(x)
    assert set(a) == set(b) == {"res2", "res3", "res4", "res5"}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)
    # The result also says what the UNet was conditioned on: the implicit captioner's context.
    assert a.prompt.context.shape == (2, 77, 32) and a.prompt.time_embed_delta.shape == (2, 128)
    assert a.attention == [] and core.attention_layer_names == []  # the captioner asks for none
    with pytest.raises(ValueError, match="MODEL.BACKBONE.NAME"):
        build_diffusion_backbone(make_cfg(TINY, "MODEL.BACKBONE.NAME", "build_resnet_backbone"))
