# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/clip.py
"""Per-mask CLIP classification (ODISE's MaskCLIP branch) on an open_clip ``VisionTransformer``.

One extra token per mask, a copy of the CLS token after ``ln_pre``, is placed before the CLS
and patch tokens. No token attends to a mask token (mask tokens included, so they never see
each other or themselves); a mask token attends to the CLS token and to the patches its mask
covers (max-pooled sigmoid mask >= 0.5 on the patch grid). CLS and patches attend as in plain
CLIP, so the image tokens are unaffected by how many masks there are.

Two equal implementations of the masked attention: the reference one hands open_clip's blocks an
additive float bias [B * heads, L, L] (nn.MultiheadAttention); the fast one (``sdpa=True``) runs
the same blocks' weights through ``F.scaled_dot_product_attention`` with a boolean [B, 1, L, L]
mask broadcast over the heads, so no float mask is materialised and the fused kernels apply.
"""
import torch
import torch.nn.functional as F

__all__ = ["mask_clip_embed", "mask_attention_bias", "mask_attention_allowed"]


def mask_attention_allowed(mask_probs, patch_size):
    """
    Args:
        mask_probs: [B, Q, H, W] mask probabilities at the CLIP input resolution.
        patch_size: CLIP patch size (kernel of max pooling).
    Returns:
        [B, 1, L, L] bool, True where query token i may attend to key token j,
        L = Q + 1 + num_patches (mask tokens, CLS, patches).
    """
    b, q = mask_probs.shape[:2]
    covered = F.max_pool2d(mask_probs, kernel_size=patch_size, stride=patch_size).flatten(2) >= 0.5
    n = covered.shape[-1]
    length = q + 1 + n
    allowed = torch.ones(b, length, length, dtype=torch.bool, device=mask_probs.device)
    allowed[:, :, :q] = False
    allowed[:, :q, q + 1 :] = covered
    return allowed[:, None]


def _sdpa_transformer(transformer, x, allowed):
    """open_clip ``Transformer`` blocks (batch-first) with SDPA and a boolean mask.

    Args:
        transformer: open_clip ``Transformer`` whose blocks hold an ``nn.MultiheadAttention``.
        x: [B, L, W] tokens.
        allowed: [B, 1, L, L] bool (True = attend).
    Returns:
        [B, L, W].
    """
    for block in transformer.resblocks:
        attn = block.attn
        b, length, width = x.shape
        heads = attn.num_heads
        qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = qkv.view(b, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        out = attn.out_proj(out.transpose(1, 2).reshape(b, length, width))
        x = x + block.ls_1(out)
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
    return x


def _sdpa_supported(transformer) -> bool:
    """Whether :func:`_sdpa_transformer` computes exactly what the blocks' forward does."""
    if not getattr(transformer, "batch_first", True):
        return False
    return all(
        isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention)
        and b.attn._qkv_same_embed_dim
        and not hasattr(b, "ln_1_kv")
        for b in transformer.resblocks
    )


def mask_attention_bias(mask_probs, patch_size, num_heads):
    """
    Args:
        mask_probs: [B, Q, H, W] mask probabilities at the CLIP input resolution.
        patch_size: CLIP patch size (kernel of max pooling).
        num_heads: attention heads of the CLIP vision transformer.
    Returns:
        [B * num_heads, L, L] additive float bias (0 or -inf), L = Q + 1 + num_patches.
    """
    b, q = mask_probs.shape[:2]
    blocked = F.max_pool2d(mask_probs, kernel_size=patch_size, stride=patch_size).flatten(2) < 0.5
    n = blocked.shape[-1]
    length = q + 1 + n
    bias = mask_probs.new_zeros(b, length, length)
    bias[:, :, :q] = float("-inf")
    bias[:, :q, q + 1 :] = bias.new_zeros(blocked.shape).masked_fill(blocked, float("-inf"))
    return bias.repeat_interleave(num_heads, dim=0)


def mask_clip_embed(visual, images, mask_logits, mean, std, *, sdpa=True):
    """
    Args:
        visual: open_clip ``VisionTransformer`` (conv1, class_embedding, positional_embedding,
            ln_pre, transformer, ln_post, proj).
        images: [B, 3, H, W] RGB in [0, 1], *unpadded*.
        mask_logits: [B, Q, h, w] mask logits covering the same (unpadded) image.
        mean, std: CLIP normalisation, 3 values each.
        sdpa: boolean-mask SDPA path (``MODEL.SPEED.SDPA``); False: additive float bias through
            open_clip's own blocks (the reference). Unsupported block types use the reference.
    Returns:
        [B, Q, D] projected mask-token embeddings (not normalised).
    """
    size = visual.image_size if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
    size = tuple(int(s) for s in size)
    x = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    probs = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False).sigmoid()
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std

    dtype = visual.conv1.weight.dtype
    x = visual.conv1(x.to(dtype)).flatten(2).transpose(1, 2)  # [B, N, W]
    cls = visual.class_embedding.to(dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(dtype)
    x = visual.ln_pre(x)
    q = mask_logits.shape[1]
    x = torch.cat([x[:, :1].expand(-1, q, -1), x], dim=1)

    patch = visual.conv1.kernel_size[0]
    if sdpa and _sdpa_supported(visual.transformer):
        x = _sdpa_transformer(visual.transformer, x, mask_attention_allowed(probs, patch))
    else:
        heads = visual.transformer.resblocks[0].attn.num_heads
        bias = mask_attention_bias(probs, patch, heads).to(dtype)
        x = visual.transformer(x, attn_mask=bias)
    x = visual.ln_post(x[:, :q])
    if visual.proj is not None:
        x = x @ visual.proj
    return x.float()
