"""Multi-scale deformable attention and the MSDeformAttn pixel decoder."""

import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec

from odise_ext.config import add_odise_config
from odise_ext.mask2former.pixel_decoder.ms_deform_attn import (
    MSDeformAttn,
    ms_deform_attn,
    ms_deform_attn_core_pytorch,
)
from odise_ext.mask2former.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder, build_pixel_decoder

SHAPES = [(5, 7), (3, 4), (2, 2)]


def naive_bilinear(img, x, y):
    """img [D, H, W]; (x, y) normalised in [0, 1] over the map, pixel centres at (i + 0.5) / size;
    zero outside the map."""
    _, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(img.shape[0], dtype=img.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def naive_core(value, shapes, locs, weights):
    """Per-sample loop: value [B, S, M, D], locs [B, Lq, M, L, P, 2], weights [B, Lq, M, L, P]."""
    bs, _, n_heads, dim = value.shape
    _, n_q, _, n_levels, n_points, _ = locs.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(bs, n_q, n_heads, dim, dtype=value.dtype)
    for b in range(bs):
        for q in range(n_q):
            for m in range(n_heads):
                for lvl, (h, w) in enumerate(shapes):
                    img = value[b, starts[lvl] : starts[lvl + 1], m].T.reshape(dim, h, w)
                    for p in range(n_points):
                        x, y = locs[b, q, m, lvl, p].tolist()
                        out[b, q, m] += weights[b, q, m, lvl, p] * naive_bilinear(img, x, y)
    return out.flatten(2)


def random_inputs(bs=2, n_q=3, n_heads=2, dim=3, n_points=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_levels = len(SHAPES)
    value = torch.randn(bs, sum(h * w for h, w in SHAPES), n_heads, dim, generator=g, dtype=dtype)
    # [-0.2, 1.2]: some samples fall (partly) outside the maps and must read zeros.
    locs = torch.rand(bs, n_q, n_heads, n_levels, n_points, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    weights = torch.rand(bs, n_q, n_heads, n_levels, n_points, generator=g, dtype=dtype)
    return value, locs, weights


def test_core_matches_naive_loop():
    value, locs, weights = random_inputs()
    expected = naive_core(value, SHAPES, locs, weights)
    out = ms_deform_attn_core_pytorch(value, torch.tensor(SHAPES), locs, weights)
    assert out.shape == (2, 3, 2 * 3)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # some samples were outside: the zero padding is exercised
    assert ((locs < 0) | (locs > 1)).any()


def test_core_gradients():
    value, locs, weights = random_inputs(bs=1, n_q=2, n_heads=1, dim=2, n_points=1, seed=1)
    locs = locs.clamp(0.05, 0.95)
    for t in (value, locs, weights):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v, l, w: ms_deform_attn_core_pytorch(v, SHAPES, l, w), (value, locs, weights)
    )


def test_kernel_selection():
    value, locs, weights = random_inputs(dtype=torch.float32)
    ref = ms_deform_attn_core_pytorch(value, SHAPES, locs, weights)
    torch.testing.assert_close(
        ms_deform_attn(value, SHAPES, locs, weights, impl="auto"), ref
    )  # CPU -> PyTorch
    with pytest.raises(RuntimeError, match="cuda"):
        ms_deform_attn(value, SHAPES, locs, weights, impl="cuda")
    with pytest.raises(ValueError, match="unknown"):
        ms_deform_attn(value, SHAPES, locs, weights, impl="triton")


def test_module_matches_deformable_attention_formula():
    torch.manual_seed(0)
    d_model, n_heads, n_points, n_levels = 8, 2, 2, len(SHAPES)
    attn = MSDeformAttn(d_model, n_levels, n_heads, n_points).double()
    with torch.no_grad():  # leave the zero init: offsets and weights must depend on the query
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_()
    bs, n_q = 2, 4
    query = torch.randn(bs, n_q, d_model, dtype=torch.float64)
    ref = torch.rand(bs, n_q, n_levels, 2, dtype=torch.float64)
    src = torch.randn(bs, sum(h * w for h, w in SHAPES), d_model, dtype=torch.float64)
    padding = torch.zeros(bs, src.shape[1], dtype=torch.bool)
    padding[1, -3:] = True
    out = attn(query, ref, src, SHAPES, padding)

    # Deformable DETR eq. 3: W_o sum_m sum_l sum_k A_mlqk W_v x_l(p_l + dp_mlqk), dp in pixels.
    value = attn.value_proj(src).masked_fill(padding[..., None], 0).view(bs, -1, n_heads, d_model // n_heads)
    heads = torch.zeros(bs, n_q, n_heads, d_model // n_heads, dtype=torch.float64)
    starts = [0, 35, 47, 51]
    for b in range(bs):
        for q in range(n_q):
            off = attn.sampling_offsets(query[b, q]).view(n_heads, n_levels, n_points, 2)
            logit = attn.attention_weights(query[b, q]).view(n_heads, n_levels * n_points)
            a = logit.softmax(-1).view(n_heads, n_levels, n_points)
            for m in range(n_heads):
                for lvl, (h, w) in enumerate(SHAPES):
                    img = value[b, starts[lvl] : starts[lvl + 1], m].T.reshape(-1, h, w)
                    for k in range(n_points):
                        x = ref[b, q, lvl, 0] + off[m, lvl, k, 0] / w
                        y = ref[b, q, lvl, 1] + off[m, lvl, k, 1] / h
                        heads[b, q, m] += a[m, lvl, k] * naive_bilinear(img, x.item(), y.item())
    expected = attn.output_proj(heads.flatten(2))
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_offset_init_pattern():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 1 looks along +y (theta = pi/2), point k at distance k + 1, same on every level
    torch.testing.assert_close(
        bias[1, 1], torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]]), atol=1e-6, rtol=0
    )
    assert attn.attention_weights.weight.abs().sum() == 0


def tiny_cfg():
    cfg = get_cfg()
    add_odise_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.MASK_FORMER.MASK_DIM = 24
    pd = cfg.MODEL.MASK_FORMER.PIXEL_DECODER
    pd.NUM_ENCODER_LAYERS, pd.NHEADS, pd.DIM_FEEDFORWARD, pd.NUM_POINTS = 1, 4, 64, 2
    return cfg


INPUT_SHAPE = {f"res{i}": ShapeSpec(channels=8 * i, stride=2**i) for i in range(2, 6)}


def test_pixel_decoder_shapes_and_gradients():
    torch.manual_seed(0)
    decoder = build_pixel_decoder(tiny_cfg(), INPUT_SHAPE)
    assert isinstance(decoder, MSDeformAttnPixelDecoder)
    assert decoder.transformer_in_features == ["res5", "res4", "res3"]
    # At init the offset and attention-weight projections are zero, so the query (and the level
    # embedding, which only enters through it) gets no gradient yet; move them off zero.
    with torch.no_grad():
        for layer in decoder.transformer.encoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(0, 0.01)
            layer.self_attn.attention_weights.weight.normal_(0, 0.01)
    feats = {
        k: torch.randn(2, v.channels, 64 // v.stride, 48 // v.stride, requires_grad=True)
        for k, v in INPUT_SHAPE.items()
    }
    mask_features, multi_scale = decoder(feats)
    assert mask_features.shape == (2, 24, 16, 12)
    assert [tuple(f.shape) for f in multi_scale] == [(2, 32, 2, 1), (2, 32, 4, 3), (2, 32, 8, 6)]
    (mask_features.square().mean() + sum(f.square().mean() for f in multi_scale)).backward()
    no_grad = [n for n, p in decoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats.values())


def test_pixel_decoder_common_stride_and_errors():
    cfg = tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 8
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res3", "res4", "res5"]
    decoder = build_pixel_decoder(cfg, INPUT_SHAPE)
    feats = {k: torch.randn(1, v.channels, 64 // v.stride, 64 // v.stride) for k, v in INPUT_SHAPE.items()}
    assert decoder(feats)[0].shape == (1, 24, 8, 8)
    with pytest.raises(KeyError, match="res3"):
        decoder({k: v for k, v in feats.items() if k != "res3"})
    cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4  # no stride-4 input to reach it
    with pytest.raises(ValueError, match="common_stride 4"):
        build_pixel_decoder(cfg, INPUT_SHAPE)
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5", "res6"]
    with pytest.raises(ValueError, match="res6"):
        build_pixel_decoder(cfg, INPUT_SHAPE)
