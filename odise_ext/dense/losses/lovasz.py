# Adapted from bermanmaxim/LovaszSoftmax@19279a04d53ead8f801c47bd11d3dffc889fe3be:pytorch/lovasz_losses.py
"""Lovász-softmax loss (Berman et al., CVPR 2018): a convex surrogate of the per-class Jaccard
loss, used with cross-entropy by the Meta-Prompts UPerNet segmentation head.

For class c, with pixel errors e_i = |[y_i = c] - p_i(c)| sorted in decreasing order
e_(1) >= e_(2) >= ..., the loss is the Lovász extension of the Jaccard set loss
Δ(M) = |M| / |F_c ∪ M| (F_c = pixels of class c, M = mispredicted pixels):

    loss_c = Σ_k e_(k) · (Δ({(1)..(k)}) - Δ({(1)..(k-1)}))

and the result is the mean of loss_c over the selected classes. For hard (0/1) predictions it
equals the mean of 1 - IoU_c.
"""
import torch

from ...utils.input_checks import check_all

__all__ = ["lovasz_softmax"]


def _jaccard_steps(fg_sorted):
    """Increments of the Jaccard loss along a sorted order, independently per column.

    Args:
        fg_sorted (Tensor): [N, C] 0/1 foreground indicators in the order of decreasing error.

    Returns:
        Tensor: [N, C]; row k is Δ(first k+1 pixels) - Δ(first k pixels).
    """
    total_fg = fg_sorted.sum(dim=0, keepdim=True)
    # |F ∩ complement(M_k)| and |F ∪ M_k| for the prefix sets M_k; the union is >= 1 for every
    # prefix, so there is no division by zero even for absent classes.
    intersection = total_fg - fg_sorted.cumsum(dim=0)
    union = total_fg + (1.0 - fg_sorted).cumsum(dim=0)
    jaccard = 1.0 - intersection / union
    steps = jaccard.clone()
    steps[1:] = jaccard[1:] - jaccard[:-1]
    return steps


def lovasz_softmax(probs, labels, *, ignore_index=255, classes="present"):
    """Multi-class Lovász-softmax over all valid pixels of the batch (not per image).

    Args:
        probs (Tensor): [B, C, H, W] (or [N, C]) class probabilities (softmax output).
        labels (Tensor): [B, H, W] (or [N]) integer labels in [0, C) or ``ignore_index``.
        ignore_index (int): label of pixels that do not contribute.
        classes (str or list[int]): "present" averages over classes that occur in the valid
            labels (the reference default), "all" over every class, or an explicit list.

    Returns:
        Tensor: scalar loss.
    """
    if probs.dim() == 4:
        if labels.dim() != 3 or labels.shape != (probs.shape[0],) + probs.shape[2:]:
            raise ValueError(
                f"Lovász: labels {tuple(labels.shape)} do not match probabilities "
                f"{tuple(probs.shape)} (expected [B,H,W] for [B,C,H,W])"
            )
        num_classes = probs.shape[1]
        probs = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
        labels = labels.reshape(-1)
    elif probs.dim() == 2:
        if labels.shape != probs.shape[:1]:
            raise ValueError(
                f"Lovász: labels {tuple(labels.shape)} do not match probabilities "
                f"{tuple(probs.shape)} (expected [N] for [N,C])"
            )
        num_classes = probs.shape[1]
    else:
        raise ValueError(f"Lovász: probabilities must be [B,C,H,W] or [N,C], got {probs.dim()}-D")

    valid = labels != ignore_index
    check_all(valid.any(), "Lovász: every pixel carries the ignore label")
    labels = labels.long()
    check_all(
        ~valid | ((labels >= 0) & (labels < num_classes)),
        f"Lovász: labels outside [0, {num_classes}) that are not the ignore label {ignore_index}",
    )
    # Ignored pixels are kept (no boolean indexing, which would sync with an accelerator) with
    # zero error and no class: they sort behind every pixel with a non-zero error, so they only
    # extend prefixes whose terms are multiplied by a zero error, and the sum is unchanged.
    classes_row = torch.arange(num_classes, device=labels.device)
    fg = ((labels[:, None] == classes_row) & valid[:, None]).to(probs.dtype)  # [N, C]
    errors = (fg - probs).abs() * valid[:, None].to(probs.dtype)
    errors_sorted, order = errors.sort(dim=0, descending=True)
    steps = _jaccard_steps(fg.gather(0, order))
    per_class = (errors_sorted * steps).sum(dim=0)  # [C]

    if classes == "present":
        selected = (fg.sum(dim=0) > 0).to(per_class.dtype)  # at least one: a valid pixel exists
        return (per_class * selected).sum() / selected.sum()
    if classes == "all":
        return per_class.mean()
    if isinstance(classes, str):
        raise ValueError(f"Lovász: classes must be 'present', 'all' or a list, got {classes!r}")
    index = torch.as_tensor(list(classes), dtype=torch.long, device=per_class.device)
    if index.numel() == 0:
        raise ValueError("Lovász: empty class list")
    return per_class[index].mean()
