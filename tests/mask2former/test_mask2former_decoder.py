"""Masked-attention decoder, its attention, positional encoding and pluggable class head."""

import math

import pytest
import torch
from detectron2.config import get_cfg
from torch import nn

from odise_ext.config import add_odise_config
from odise_ext.mask2former.transformer_decoder.class_head import CLASS_HEAD_REGISTRY, LinearClassHead
from odise_ext.mask2former.transformer_decoder.layers import MultiheadAttention
from odise_ext.mask2former.transformer_decoder.mask2former_decoder import (
    MultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
)
from odise_ext.mask2former.transformer_decoder.position_encoding import PositionEmbeddingSine

SIZES = [(2, 2), (4, 4), (8, 8)]


def tiny_cfg():
    cfg = get_cfg()
    add_odise_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 5
    mf = cfg.MODEL.MASK_FORMER
    mf.HIDDEN_DIM, mf.NHEADS, mf.DIM_FEEDFORWARD, mf.NUM_DECODER_LAYERS = 32, 4, 64, 2
    mf.NUM_OBJECT_QUERIES, mf.MASK_DIM = 10, 32
    return cfg


def inputs(bs=2, in_channels=32, mask_dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(bs, in_channels, h, w, generator=g) for h, w in SIZES]
    return feats, torch.randn(bs, mask_dim, 16, 16, generator=g)


def mask2former_sine_reference(mask, num_pos_feats, temperature=10000.0, scale=2 * math.pi):
    """Mask2Former's PositionEmbeddingSine(normalize=True), written element by element from its
    definition: y_k = (number of valid pixels in rows 0..k of the column) / (valid rows + 1e-6)
    * scale (same for x along the row); channel j of each coordinate is sin (j even) / cos (j odd)
    of c / temperature^(2 (j // 2) / F); the y channels come first, then x."""
    b, h, w = mask.shape
    out = torch.zeros(b, 2 * num_pos_feats, h, w, dtype=torch.float64)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                valid = ~mask[n]
                y = valid[: i + 1, j].sum().item() / (valid[:, j].sum().item() + 1e-6) * scale
                x = valid[i, : j + 1].sum().item() / (valid[i, :].sum().item() + 1e-6) * scale
                for a, c in enumerate((y, x)):
                    for k in range(num_pos_feats):
                        arg = c / temperature ** (2 * (k // 2) / num_pos_feats)
                        out[n, a * num_pos_feats + k, i, j] = math.sin(arg) if k % 2 == 0 else math.cos(arg)
    return out


def test_position_encoding_is_mask2formers():
    pe = PositionEmbeddingSine(num_pos_feats=6, normalize=True)
    out = pe(torch.zeros(1, 7, 3, 5))
    assert out.shape == (1, 12, 3, 5)
    torch.testing.assert_close(
        out.double(), mask2former_sine_reference(torch.zeros(1, 3, 5, dtype=torch.bool), 6), rtol=0, atol=1e-5
    )
    # the last valid pixel sits at exactly `scale` (no half-pixel offset): sin(2 pi) = 0, cos = 1
    assert out[0, :2, -1, 0].tolist() == pytest.approx([0.0, 1.0], abs=1e-5)
    # padding (True) does not count: row/column cumulative sums restart per image
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[0, 3:, :] = True
    mask[1, :, 2:] = True
    torch.testing.assert_close(
        pe(torch.zeros(2, 1, 4, 5), mask).double(), mask2former_sine_reference(mask, 6), rtol=0, atol=1e-5
    )


def test_attention_matches_torch_mha_layout_and_masked_softmax():
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 4)
    ref = nn.MultiheadAttention(16, 4, batch_first=True)
    ref.load_state_dict(attn.state_dict())  # same parameter names and layout
    q, kv = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    torch.testing.assert_close(attn(q, kv, kv), ref(q, kv, kv, need_weights=False)[0], rtol=1e-5, atol=1e-5)

    allowed = torch.rand(2, 3, 7) > 0.5
    allowed[0, 1] = False  # empty mask: this query attends everywhere
    allowed[1, 2] = True
    out = attn(q, kv, kv, attn_mask=allowed)
    # naive per-head softmax over allowed keys
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    expected = torch.zeros(2, 3, 16)
    for b in range(2):
        for i in range(3):
            keys = allowed[b, i] if allowed[b, i].any() else torch.ones(7, dtype=torch.bool)
            heads = []
            for h in range(4):
                sl = slice(4 * h, 4 * h + 4)
                qi = (q[b, i] @ w_q.T + b_q)[sl]
                k = (kv[b] @ w_k.T + b_k)[:, sl][keys]
                v = (kv[b] @ w_v.T + b_v)[:, sl][keys]
                heads.append(torch.softmax(k @ qi / 2.0, 0) @ v)
            expected[b, i] = attn.out_proj(torch.cat(heads))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[0, 1], attn(q, kv, kv)[0, 1])
    with pytest.raises(TypeError, match="bool"):
        attn(q, kv, kv, attn_mask=allowed.float())


def test_attention_mask_from_predicted_masks():
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 1, :2, :2] = 5.0  # query 1 predicts the top-left quadrant; query 0 nothing
    mask = MultiScaleMaskedTransformerDecoder.attention_mask(logits, (2, 2))
    assert mask.shape == (1, 1, 2, 4) and mask.dtype == torch.bool
    assert mask[0, 0, 1].tolist() == [True, False, False, False]
    assert not mask[0, 0, 0].any()  # empty row; the attention then lets it see everything


def test_decoder_outputs_and_gradients():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.MASK_FORMER.NUM_DECODER_LAYERS = 3  # one layer per level: every input projection is used
    decoder = build_transformer_decoder(cfg, in_channels=24)
    assert isinstance(decoder, MultiScaleMaskedTransformerDecoder)
    assert isinstance(decoder.class_embed, LinearClassHead)
    feats, mask_features = inputs(in_channels=24)
    for f in feats + [mask_features]:
        f.requires_grad_(True)
    out = decoder(feats, mask_features)
    assert out["pred_logits"].shape == (2, 10, 6)
    assert out["pred_masks"].shape == (2, 10, 16, 16)
    assert out["query_features"].shape == (2, 10, 32)
    assert len(out["aux_outputs"]) == 3  # prediction from the learnable queries + layers 1, 2
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 10, 6) and aux["pred_masks"].shape == (2, 10, 16, 16)
    # the first prediction depends only on the learnable queries, not on the image features
    q = decoder.decoder_norm(decoder.query_feat.weight)
    expected = torch.einsum("qc,bchw->bqhw", decoder.mask_embed(q), mask_features)
    torch.testing.assert_close(out["aux_outputs"][0]["pred_masks"], expected)

    loss = out["pred_logits"].square().mean() + out["pred_masks"].square().mean()
    loss.backward()
    no_grad = [n for n, p in decoder.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []
    assert all(f.grad.abs().sum() > 0 for f in feats + [mask_features])


def test_masked_attention_rule_in_decoder(monkeypatch):
    """Queries with an empty predicted mask attend to every pixel: with mask features that make
    every mask empty, the decoder equals one whose attention is never masked."""
    torch.manual_seed(0)
    decoder = build_transformer_decoder(tiny_cfg(), in_channels=32).eval()
    feats, _ = inputs()
    with torch.no_grad():
        decoder.mask_embed.layers[-1].weight.zero_()
        decoder.mask_embed.layers[-1].bias.fill_(-1.0)
    mask_features = torch.ones(2, 32, 16, 16)  # every mask logit = -32: all masks empty
    out = decoder(feats, mask_features)
    half = mask_features.clone()
    half[:, :, :8] = -1.0  # masks cover the top half only
    out_half = decoder(feats, half)
    monkeypatch.setattr(
        MultiScaleMaskedTransformerDecoder, "attention_mask", staticmethod(lambda logits, size: None)
    )
    unmasked = decoder(feats, mask_features)
    torch.testing.assert_close(out["query_features"], unmasked["query_features"])
    # ...while a non-empty mask does restrict the attention
    assert not torch.allclose(out_half["query_features"], decoder(feats, half)["query_features"])


@CLASS_HEAD_REGISTRY.register()
class _RecordingClassHead(nn.Module):
    """Logits from the query and the mean mask logit; records what the decoder passes."""

    def __init__(self, cfg=None, num_classes=5, hidden_dim=32):
        super().__init__()
        self.proj = nn.Linear(hidden_dim, num_classes + 1)
        self.calls = []

    def forward(self, query, mask_features, mask_logits):
        self.calls.append((query, mask_features, mask_logits))
        return self.proj(query) + mask_logits.mean((2, 3))[..., None]


def test_pluggable_class_head_by_name_and_by_instance():
    cfg = tiny_cfg()
    cfg.MODEL.MASK_FORMER.CLASS_HEAD_NAME = "_RecordingClassHead"
    decoder = build_transformer_decoder(cfg, in_channels=32)
    assert isinstance(decoder.class_embed, _RecordingClassHead)

    head = _RecordingClassHead()
    decoder = build_transformer_decoder(tiny_cfg(), in_channels=32, class_head=head)
    assert decoder.class_embed is head
    feats, mask_features = inputs()
    out = decoder(feats, mask_features)
    assert len(head.calls) == 3  # every prediction step
    preds = out["aux_outputs"] + [out]
    for (query, mf, mask_logits), pred in zip(head.calls, preds):
        assert mf is mask_features
        assert query is pred["query_features"]
        assert mask_logits is pred["pred_masks"]
        torch.testing.assert_close(
            pred["pred_logits"], head.proj(query) + mask_logits.mean((2, 3))[..., None]
        )


def test_external_queries_with_padding():
    """PNG-style: no learnable queries, one given query per phrase, padding queries ignored."""
    cfg = tiny_cfg()
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 0
    torch.manual_seed(0)
    decoder = build_transformer_decoder(cfg, in_channels=32, mask_classification=False).eval()
    assert decoder.class_embed is None and not hasattr(decoder, "query_feat")
    feats, mask_features = inputs()
    queries = torch.randn(2, 4, 32)
    padding = torch.tensor([[False, False, False, True], [False, False, True, True]])
    out = decoder(feats, mask_features, queries=queries, query_padding_mask=padding)
    assert "pred_logits" not in out and out["pred_masks"].shape == (2, 4, 16, 16)
    changed = queries.clone()
    changed[padding] = torch.randn(int(padding.sum()), 32)
    out2 = decoder(feats, mask_features, queries=changed, query_padding_mask=padding)
    torch.testing.assert_close(out["pred_masks"][~padding], out2["pred_masks"][~padding])
    # without the padding mask the padded queries do influence the others
    out3 = decoder(feats, mask_features, queries=changed)
    assert not torch.allclose(out["pred_masks"][~padding], out3["pred_masks"][~padding])

    with pytest.raises(ValueError, match="pass `queries`"):
        decoder(feats, mask_features)
    with pytest.raises(ValueError, match="queries must be"):
        decoder(feats, mask_features, queries=torch.randn(2, 4, 16))


def test_decoder_errors():
    decoder = build_transformer_decoder(tiny_cfg(), in_channels=32)
    feats, mask_features = inputs()
    with pytest.raises(ValueError, match="3 feature levels"):
        decoder(feats[:2], mask_features)
    with pytest.raises(ValueError, match="NUM_OBJECT_QUERIES 0"):
        decoder(feats, mask_features, queries=torch.randn(2, 10, 32))
    with pytest.raises(ValueError, match="mask_classification=False"):
        build_transformer_decoder(
            tiny_cfg(), in_channels=32, mask_classification=False, class_head=nn.Identity()
        )
