# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/odise.py
"""Geometric ensemble of the diffusion-feature classifier and the CLIP classifier (ODISE).

For K classes plus a "void"/null class::

    p      = softmax(category_logits[..., :K])            # diffusion-feature head, without null
    q      = softmax(clip_logits)                          # per-mask CLIP classification
    open_k = log(p_k^(1-a_k) * q_k^a_k),   a_k = alpha if class k is seen in training else beta
    p_null = softmax(category_logits)[..., K]
    scores = log(concat(softmax(open) * (1 - p_null), p_null) + 1e-8)

The result is a log-probability over K+1 classes, the format Mask2Former inference expects
(it applies softmax again, which returns these probabilities).
"""
import torch
import torch.nn.functional as F

__all__ = ["geometric_ensemble"]


def geometric_ensemble(category_logits, clip_logits, seen, alpha, beta, eps=1e-8):
    """
    Args:
        category_logits: [..., K+1] logits of the diffusion-feature head (last = null).
        clip_logits: [..., K] logits of the CLIP branch.
        seen: [K] bool, True for classes seen in training.
        alpha, beta: CLIP weight for seen / unseen classes.
    Returns:
        [..., K+1] log-probabilities.
    """
    k = clip_logits.shape[-1]
    if category_logits.shape[-1] != k + 1:
        raise ValueError(f"category logits have {category_logits.shape[-1]} classes, expected K+1 = {k + 1}")
    seen = torch.as_tensor(seen, dtype=torch.bool, device=clip_logits.device)
    if seen.shape != (k,):
        raise ValueError(f"seen mask has shape {tuple(seen.shape)}, expected ({k},)")
    a = torch.where(seen, torch.tensor(float(alpha), device=seen.device), torch.tensor(float(beta), device=seen.device))
    log_p = F.log_softmax(category_logits[..., :k], dim=-1)
    log_q = F.log_softmax(clip_logits, dim=-1)
    open_logits = (1 - a) * log_p + a * log_q
    p_null = F.softmax(category_logits, dim=-1)[..., k:]
    probs = torch.cat([F.softmax(open_logits, dim=-1) * (1 - p_null), p_null], dim=-1)
    return torch.log(probs + eps)
