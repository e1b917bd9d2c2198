"""Per-mask CLIP classification (ODISE's MaskCLIP branch) on an open_clip ``VisionTransformer``.

One extra token per mask, a copy of the CLS token after ``ln_pre``, is placed before the CLS
and patch tokens. No token attends to a mask token (mask tokens included, so they never see
each other or themselves); a mask token attends to the CLS token and to the patches its mask
covers (max-pooled sigmoid mask >= 0.5 on the patch grid). CLS and patches attend as in plain
CLIP, so the image tokens are unaffected by how many masks there are.
"""
import torch
import torch.nn.functional as F

__all__ = ["mask_clip_embed", "mask_attention_bias"]


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


def mask_clip_embed(visual, images, mask_logits, mean, std):
    """
    Args:
        visual: open_clip ``VisionTransformer`` (conv1, class_embedding, positional_embedding,
            ln_pre, transformer, ln_post, proj).
        images: [B, 3, H, W] RGB in [0, 1], *unpadded*.
        mask_logits: [B, Q, h, w] mask logits covering the same (unpadded) image.
        mean, std: CLIP normalisation, 3 values each.
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
    heads = visual.transformer.resblocks[0].attn.num_heads
    bias = mask_attention_bias(probs, patch, heads).to(dtype)
    x = visual.transformer(x, attn_mask=bias)
    x = visual.ln_post(x[:, :q])
    if visual.proj is not None:
        x = x @ visual.proj
    return x.float()
