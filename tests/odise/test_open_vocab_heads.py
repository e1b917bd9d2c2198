import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from odise_ext.odise.open_vocab.heads import CategoryHead, MaskPooledEmbedding, synonym_max
from odise_ext.odise.open_vocab.mask_clip import mask_clip_embed


def test_mask_pooling_is_hard_and_detached():
    torch.manual_seed(0)
    head = MaskPooledEmbedding(mask_dim=4, hidden_dim=6, embed_dim=5)
    feats = torch.randn(1, 4, 3, 3)
    logits = torch.full((1, 2, 3, 3), -5.0, requires_grad=True)
    with torch.no_grad():
        logits[0, 0, 0, :2] = 5.0  # query 0 covers two pixels
    q = torch.randn(1, 2, 6)
    out = head(q, feats, logits)
    pooled0 = feats[0, :, 0, :2].mean(-1)
    expected0 = head.mask_embed(head.pool_proj(pooled0) + q[0, 0])
    # query 1 covers nothing: pooled features are 0 (no NaN from 0/0)
    expected1 = head.mask_embed(head.pool_proj(torch.zeros(4)) + q[0, 1])
    assert torch.allclose(out[0, 0], expected0, atol=1e-5)
    assert torch.allclose(out[0, 1], expected1, atol=1e-5)
    out.sum().backward()
    assert logits.grad is None  # masks are detached
    assert head.pool_proj[1].weight.grad is not None
    assert head.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_synonym_max_and_category_logits_by_hand():
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    assert synonym_max(logits, [0, 1, 1, 2], 3).tolist() == [[1.0, 3.0, -1.0]]
    with pytest.raises(ValueError, match="no synonym"):
        synonym_max(logits, [0, 0, 0, 0], 2)

    torch.manual_seed(1)
    head = CategoryHead(clip_dim=3, embed_dim=2, null_init=torch.randn(1, 3))
    z = torch.randn(1, 1, 2)
    text = torch.randn(3, 3)
    owner = [0, 1, 1]
    got = head(z, text, owner, 2, 10.0)[0, 0]

    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    zt = z[0, 0]
    proj = [head.text_proj(text[i]) for i in range(3)]
    expected = [10 * cos(zt, proj[0]), 10 * max(cos(zt, proj[1]), cos(zt, proj[2])),
                10 * cos(zt, head.text_proj(head.null_embed[0]))]
    assert torch.allclose(got, torch.tensor(expected), atol=1e-5)


def _tiny_visual():
    torch.manual_seed(0)
    cfg = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=8),
               text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=4, layers=1))
    model = open_clip.CLIP(**cfg).eval()
    return model.visual


def _reference_mask_token(visual, x_tokens_per_layer, blocked, layer_blocks):
    """Independent formulation: image tokens evolve as in plain CLIP (mask tokens never
    influence them); the mask token attends (single query) to CLS + unblocked patches."""
    y = x_tokens_per_layer[0][0:1].clone()  # copy of CLS after ln_pre, [1, W]
    for layer, blk in enumerate(layer_blocks):
        keys_in = x_tokens_per_layer[layer]  # [1 + N, W] input of this block
        allowed = torch.cat([torch.tensor([True]), ~blocked])
        attn = blk.attn
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        h = attn.num_heads
        yq = blk.ln_1(y) @ w_q.t() + b_q
        kv = blk.ln_1(keys_in)
        k = kv @ w_k.t() + b_k
        v = kv @ w_v.t() + b_v
        d = yq.shape[-1] // h
        outs = []
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            s = (yq[:, sl] @ k[:, sl].t()) / math.sqrt(d)
            s = s.masked_fill(~allowed[None], float("-inf"))
            outs.append(torch.softmax(s, -1) @ v[:, sl])
        a = torch.cat(outs, -1) @ attn.out_proj.weight.t() + attn.out_proj.bias
        y = y + blk.ls_1(a)
        y = y + blk.ls_2(blk.mlp(blk.ln_2(y)))
    return visual.ln_post(y) @ visual.proj


def test_mask_clip_matches_independent_per_mask_computation():
    visual = _tiny_visual()
    torch.manual_seed(3)
    img = torch.rand(1, 3, 32, 32)
    mask_logits = torch.full((1, 2, 32, 32), -4.0)
    mask_logits[0, 0, :16, :16] = 4.0   # top-left quadrant
    mask_logits[0, 1, 8:, :] = 4.0      # bottom three rows of patches
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    with torch.no_grad():
        got = mask_clip_embed(visual, img, mask_logits, mean, std)
        # plain CLIP image tokens, layer by layer
        x = (img - 0.5) / 0.25
        x = visual.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(1, 1, -1), x], 1) + visual.positional_embedding
        x = visual.ln_pre(x)
        per_layer = [x[0]]
        for blk in visual.transformer.resblocks:
            x = blk(x)
            per_layer.append(x[0])
        probs = mask_logits.sigmoid()
        for q in range(2):
            blocked = F.max_pool2d(probs[:, q : q + 1], 8, 8).flatten() < 0.5
            ref = _reference_mask_token(visual, per_layer, blocked, visual.transformer.resblocks)
            assert torch.allclose(got[0, q], ref[0], atol=1e-4), q
    assert not torch.allclose(got[0, 0], got[0, 1])
