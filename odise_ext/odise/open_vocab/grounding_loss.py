# Adapted from NVlabs/ODISE@e7192c969f8d58fe574d787a47f74424ec99452e:odise/modeling/meta_arch/odise.py
"""Caption grounding loss of ODISE's caption model.

For image i with mask embeddings z_i [Q, E] and caption j with noun-phrase embeddings w_j [P, E]
(both L2-normalised), s_qk = tau * <z_iq, w_jk> and the grounding score is

    g(i, j) = mean_k  sum_q softmax_q(s_qk) * s_qk

The loss is the symmetric InfoNCE over the global batch:
``(CE(G, arange) + CE(G^T, arange)) / 2`` with ``G[i, j] = g(i, j)``. Under distributed training
the embeddings are gathered *with gradient* from every process and every process computes the
same global loss; DDP's gradient averaging then yields exactly the global loss's gradient.
"""
import torch
import torch.nn.functional as F
from detectron2.utils import comm

from ...utils.precision import float32_loss

__all__ = ["grounding_scores", "caption_grounding_loss"]


def grounding_scores(mask_embed, phrase_embed, logit_scale):
    """
    Args:
        mask_embed: [B, Q, E] mask embeddings of B images.
        phrase_embed: [C, P, E] noun-phrase embeddings of C captions.
        logit_scale: scalar tau (already exponentiated / clamped).
    Returns:
        [B, C] grounding scores g(image, caption).
    """
    z = F.normalize(mask_embed, dim=-1)
    w = F.normalize(phrase_embed, dim=-1)
    s = logit_scale * torch.einsum("bqe,cke->bcqk", z, w)
    return (F.softmax(s, dim=2) * s).sum(dim=2).mean(dim=-1)


def _gather_with_grad(x):
    if comm.get_world_size() == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x.contiguous()), dim=0)


@float32_loss
def caption_grounding_loss(mask_embed, phrase_embed, logit_scale):
    """Symmetric InfoNCE over the (global) batch; image i is paired with caption i.

    Args:
        mask_embed: [B, Q, E] local mask embeddings.
        phrase_embed: [B, P, E] local phrase embeddings (P phrases of one caption per image).
        logit_scale: scalar tau.
    """
    if mask_embed.shape[0] != phrase_embed.shape[0]:
        raise ValueError(f"{mask_embed.shape[0]} images but {phrase_embed.shape[0]} captions")
    z = _gather_with_grad(mask_embed)
    w = _gather_with_grad(phrase_embed)
    g = grounding_scores(z, w, logit_scale)
    target = torch.arange(g.shape[0], device=g.device)
    return 0.5 * (F.cross_entropy(g, target) + F.cross_entropy(g.t(), target))
